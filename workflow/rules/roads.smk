# Stage 2: OpenStreetMap -> drivable strongly connected road network -> road segments.


def osm_input(wc):
    osm = config["cities"][wc.city]["osm"]
    # with osm.overpass the file is download_osm's output (downloads.enabled) or already there
    return [DATA_ROOT / osm["file"]] if osm.get("file") else []


rule build_road_network:
    input:
        osm_input,
    output:
        segments="results/{city}/roads/segments.parquet",
        adjacency="results/{city}/roads/adjacency.parquet",
    params:
        osm=lambda wc: config["cities"][wc.city]["osm"],
        crs=lambda wc: config["cities"][wc.city]["crs"],
        bbox=lambda wc: config["cities"][wc.city]["bbox"],
        data_root=config["data_root"],
    log:
        "logs/{city}/build_road_network.log",
    benchmark:
        "benchmarks/{city}/build_road_network.tsv"
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/build_road_network.py"
