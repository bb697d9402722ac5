# GPS point features of a city's ingested trips, for models that read points (input "points"):
# projected x, y, local time, nearest-road and POI context. Built whenever a requested model
# needs them; a city without a road network gets no road context.


rule gps_points:
    input:
        trips="results/{city}/trips.parquet",
        segments=lambda wc: (
            ["results/{city}/roads/segments.parquet"] if wc.city in ROAD_CITIES else []
        ),
        pois=lambda wc: [DATA_ROOT / p for p in config["cities"][wc.city]["pois"]],
    output:
        points="results/{city}/points.parquet",
        qc="results/{city}/qc/points.csv",
    log:
        "logs/{city}/gps_points.log",
    benchmark:
        "benchmarks/{city}/gps_points.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        crs=lambda wc: config["cities"][wc.city]["crs"],
        timezone=lambda wc: config["cities"][wc.city]["timezone"],
        radii=config["points"],
    script:
        "../scripts/gps_points.py"
