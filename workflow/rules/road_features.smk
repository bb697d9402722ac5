# Stage 4: MetaTRL road features: structural s (eq. 5), attributes u, transitions p_ij (eq. 10).


rule road_features:
    input:
        segments="results/{city}/roads/segments.parquet",
        adjacency="results/{city}/roads/adjacency.parquet",
        matched="results/{city}/matched.parquet",
        splits="results/{city}/splits.parquet",
    output:
        structural="results/{city}/roads/structural.parquet",
        attributes="results/{city}/roads/attributes.parquet",
        transitions="results/{city}/roads/transitions.parquet",
    log:
        "logs/{city}/road_features.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/road_features.py"
