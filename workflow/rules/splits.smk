# Stage 3: ONE deterministic train/val/test split per city, by trip id (seeded), of the ingested
# trips. Every model uses it: a trip is in the same split for road, point and grid models; a trip
# that a view rejects (map matching, point features) is missing from that view only, counted in
# that stage's QC.


rule split_trips:
    input:
        trips="results/{city}/trips.parquet",
    output:
        splits="results/{city}/splits.parquet",
        qc="results/{city}/qc/split.csv",
    log:
        "logs/{city}/split_trips.log",
    conda:
        "../../envs/core.yaml"
    params:
        split=lambda wc: config["cities"][wc.city]["split"],
        caps=lambda wc: config["cities"][wc.city]["caps"],
    script:
        "../scripts/split_trips.py"
