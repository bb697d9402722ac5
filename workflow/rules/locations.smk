# Task locations of location-level tasks (task kind "location", e.g. TrajGANR's traffic speed,
# road popularity, AOI function, hard braking): points every locations.spacing_m metres along the
# road segments (offline default), or the city's street-view image locations (cities.<city>.images)
# snapped to their nearest segment; the trips whose GPS path passes within locations.delta_m of
# each; the POI category counts within locations.aoi_radius_m.


def location_images(wc):
    images = config["cities"][wc.city].get("images")
    if not images:
        return []
    return [f"results/{wc.city}/images/images.csv"]


rule task_locations:
    input:
        segments="results/{city}/roads/segments.parquet",
        points="results/{city}/points.parquet",
        splits="results/{city}/splits.parquet",
        pois=lambda wc: [DATA_ROOT / p for p in config["cities"][wc.city]["pois"]],
        images=location_images,
    output:
        locations="results/{city}/locations/locations.parquet",
        trips="results/{city}/locations/trips.parquet",
        frame="results/{city}/locations/frame.json",
        qc="results/{city}/qc/locations.csv",
    params:
        options=config["locations"],
        crs=lambda wc: config["cities"][wc.city]["crs"],
        bbox=lambda wc: config["cities"][wc.city]["bbox"],
        seed=SEEDS[0],
    log:
        "logs/{city}/task_locations.log",
    benchmark:
        "benchmarks/{city}/task_locations.tsv"
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/task_locations.py"
