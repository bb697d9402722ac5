# Task locations of location-level tasks (task kind "location", e.g. TrajGANR's traffic speed,
# road popularity, AOI function, hard braking): points every locations.spacing_m metres along the
# road segments (offline default), or the city's street-view image locations (cities.<city>.images)
# snapped to their nearest segment; the trips whose GPS path passes within locations.delta_m of
# each; the POI category counts within locations.aoi_radius_m.


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
    log:
        "logs/{city}/task_locations.log",
    benchmark:
        "benchmarks/{city}/task_locations.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        options=config["locations"],
        crs=lambda wc: config["cities"][wc.city]["crs"],
        bbox=lambda wc: config["cities"][wc.city]["bbox"],
        seed=SEEDS[0],
    script:
        "../scripts/task_locations.py"


# Street-view images (cities.<city>.images; none by default): a folder of geotagged images
# (a CSV of file, lon, lat) or a Mapillary API v4 download (online; the token is read from
# $MAPILLARY_TOKEN, never logged or written). The DAG stops here when images are configured and a
# model's image backbone cannot be loaded (e.g. TrajGANR without its streetview extra).
for _city in CITIES:
    if config["cities"][_city].get("images"):
        for _name, _plugin in PLUGINS.items():
            if hasattr(_plugin, "check_images"):
                try:
                    _plugin.check_images(config["models"][_name], True)
                except ValueError as exc:
                    raise WorkflowError(f"cities.{_city}.images: models.{_name}: {exc}")


rule street_view_images:
    input:
        csv=lambda wc: (
            [DATA_ROOT / config["cities"][wc.city]["images"]["csv"]]
            if config["cities"][wc.city]["images"]["source"] == "folder"
            else []
        ),
    output:
        images="results/{city}/images/images.csv",
        provenance="results/{city}/images/provenance.csv",
        qc="results/{city}/qc/images.csv",
    log:
        "logs/{city}/street_view_images.log",
    conda:
        "../../envs/models.yaml"
    params:
        options=lambda wc: config["cities"][wc.city]["images"],
        bbox=lambda wc: config["cities"][wc.city]["bbox"],
        folder=lambda wc: f"results/{wc.city}/images/files",
        model=lambda wc: image_model(),
    script:
        "../scripts/street_view_images.py"


rule image_features:
    # frozen backbone features, once per image, aligned with the task locations (cached here)
    input:
        images="results/{city}/images/images.csv",
        locations="results/{city}/locations/locations.parquet",
    output:
        features="results/{city}/images/features.npy",
    log:
        "logs/{city}/image_features.log",
    benchmark:
        "benchmarks/{city}/image_features.tsv"
    conda:
        "../../envs/models.yaml"
    resources:
        gpu=gpu_request,
    params:
        model=lambda wc: image_model(),
        hparams=lambda wc: config["models"][image_model()]["hparams"],
        device=config["device"],
    script:
        "../scripts/image_features.py"
