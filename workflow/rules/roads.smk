# Stage 2: OpenStreetMap -> drivable strongly connected road network -> road segments.


rule build_road_network:
    input:
        osm_input,
    output:
        segments="results/{city}/roads/segments.parquet",
        adjacency="results/{city}/roads/adjacency.parquet",
    log:
        "logs/{city}/build_road_network.log",
    benchmark:
        "benchmarks/{city}/build_road_network.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        osm=lambda wc: config["cities"][wc.city]["osm"],
        crs=lambda wc: config["cities"][wc.city]["crs"],
        bbox=lambda wc: config["cities"][wc.city]["bbox"],
        data_root=config["data_root"],
    script:
        "../scripts/build_road_network.py"
