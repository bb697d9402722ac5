# Stage 5: deterministic train/val/test split by trip (seeded).


rule split_trips:
    input:
        matched="results/{city}/matched.parquet",
    output:
        splits="results/{city}/splits.parquet",
        qc="results/{city}/qc/split.csv",
    params:
        split=lambda wc: config["cities"][wc.city]["split"],
        max_train_trips=lambda wc: config["cities"][wc.city]["caps"]["max_train_trips"],
    log:
        "logs/{city}/split_trips.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/split_trips.py"
