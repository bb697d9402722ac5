# Stage 3: FMM map matching (fastmm), UBODT cached under results/<city>/ubodt/.


rule map_match:
    input:
        trips="results/{city}/trips.parquet",
        segments="results/{city}/roads/segments.parquet",
    output:
        matched="results/{city}/matched.parquet",
        stats="results/{city}/qc/map_matching_stats.parquet",
        rejections="results/{city}/qc/map_matching_rejections.parquet",
        qc="results/{city}/qc/map_matching.csv",
    params:
        map_matching=lambda wc: config["cities"][wc.city]["map_matching"],
        crs=lambda wc: config["cities"][wc.city]["crs"],
        ubodt_dir=lambda wc: f"results/{wc.city}/ubodt",
    threads: 2
    log:
        "logs/{city}/map_match.log",
    benchmark:
        "benchmarks/{city}/map_match.tsv"
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/map_match.py"
