# Stage 1: raw GPS files -> one table of trips + counted rejections.


rule ingest_trajectories:
    input:
        lambda wc: DATA_ROOT / config["cities"][wc.city]["trajectories"]["path"],
        # the road network (+ filters.network_buffer_m) is the usable area: trips leaving it are rejected
        segments=lambda wc: (
            [f"results/{wc.city}/roads/segments.parquet"]
            if config["cities"][wc.city].get("osm")
            else []
        ),
    output:
        trips="results/{city}/trips.parquet",
        rejections="results/{city}/qc/ingest_rejections.parquet",
        qc="results/{city}/qc/ingest.csv",
    log:
        "logs/{city}/ingest_trajectories.log",
    benchmark:
        "benchmarks/{city}/ingest_trajectories.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        # only what ingest reads: the split caps (max_train_trips, ...) do not rerun it
        city=lambda wc: {
            **{
                k: config["cities"][wc.city].get(k)
                for k in ("trajectories", "bbox", "filters", "crs", "osm")
            },
            "caps": {"max_trips": config["cities"][wc.city]["caps"]["max_trips"]},
        },
        data_root=config["data_root"],
    script:
        "../scripts/ingest_trajectories.py"
