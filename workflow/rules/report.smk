# Figures of `snakemake --report results/report.html`: maps of the road networks with matched
# trajectories, map-matching statistics, loss curves and metric bars per target city, and the
# transfer-matrix heatmaps (results/transfer/figures/<model>.png, rule transfer_table).


rule plot_network:
    input:
        segments="results/{city}/roads/segments.parquet",
        matched="results/{city}/matched.parquet",
    output:
        figure=report(
            "results/{city}/figures/network.png",
            category="Maps",
            subcategory="{city}",
            caption="../report/network.rst",
        ),
    log:
        "logs/{city}/plot_network.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/plot_figures.py"


rule plot_map_matching:
    input:
        stats="results/{city}/qc/map_matching_stats.parquet",
    output:
        figure=report(
            "results/{city}/figures/map_matching.png",
            category="Map matching",
            subcategory="{city}",
            caption="../report/map_matching.rst",
        ),
    log:
        "logs/{city}/plot_map_matching.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/plot_figures.py"


rule plot_losses:
    input:
        pretrain=lambda wc: sorted({p for p, _ in loss_curve_runs(wc.city).values()}),
        finetune=lambda wc: [
            f for _, fs in loss_curve_runs(wc.city).values() for f in fs
        ],
    output:
        figure=report(
            "results/{city}/figures/losses.png",
            category="Training",
            subcategory="{city}",
            caption="../report/losses.rst",
        ),
    log:
        "logs/{city}/plot_losses.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    params:
        runs=lambda wc: loss_curve_runs(wc.city),
    script:
        "../scripts/plot_figures.py"


rule plot_metrics:
    input:
        table="results/{city}/summary.csv",
    output:
        figure=report(
            "results/{city}/figures/metrics.png",
            category="Summary",
            subcategory="{city}",
            caption="../report/metrics.rst",
        ),
    log:
        "logs/{city}/plot_metrics.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/plot_figures.py"


# Figures people look at beyond the tables (trajzoo.figures; one script, workflow/scripts/figures.py).


rule plot_route_map:
    input:
        segments="results/{city}/roads/segments.parquet",
        trips="results/{city}/trips.parquet",
        matched="results/{city}/matched.parquet",
    output:
        figure=report(
            "results/{city}/figures/routes.html",
            category="Maps",
            subcategory="{city}",
            caption="../report/routes.rst",
        ),
    log:
        "logs/{city}/plot_route_map.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    params:
        crs=lambda wc: config["cities"][wc.city]["crs"],
    script:
        "../scripts/figures.py"


rule plot_gps_distances:
    input:
        segments="results/{city}/roads/segments.parquet",
        trips="results/{city}/trips.parquet",
    output:
        figure=report(
            "results/{city}/figures/gps_road_distances.png",
            category="Map matching",
            subcategory="{city}",
            caption="../report/gps_distances.rst",
        ),
    log:
        "logs/{city}/plot_gps_distances.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    params:
        crs=lambda wc: config["cities"][wc.city]["crs"],
        radius=lambda wc: config["cities"][wc.city]["map_matching"][
            "candidate_search_radius"
        ],
    script:
        "../scripts/figures.py"


rule plot_embeddings:
    input:
        embeddings=lambda wc: [
            f"results/{wc.city}/embeddings/{m}.parquet"
            for m in city_default_models(wc.city)
        ],
        trips="results/{city}/trips.parquet",
    output:
        figure=report(
            "results/{city}/figures/embeddings.png",
            category="Embeddings",
            subcategory="{city}",
            caption="../report/embeddings.rst",
        ),
    log:
        "logs/{city}/plot_embeddings.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    params:
        models=lambda wc: city_default_models(wc.city),
        timezone=lambda wc: config["cities"][wc.city]["timezone"],
    script:
        "../scripts/figures.py"


rule plot_tte:
    input:
        predictions=lambda wc: list(tte_prediction_files(wc.city).values()),
    output:
        figure=report(
            "results/{city}/figures/tte.png",
            category="Summary",
            subcategory="{city}",
            caption="../report/tte.rst",
        ),
    log:
        "logs/{city}/plot_tte.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    params:
        labels=lambda wc: list(tte_prediction_files(wc.city)),
    script:
        "../scripts/figures.py"


rule plot_ablations:
    input:
        table="results/{city}/{model}-ablations.csv",
    output:
        figure=report(
            "results/{city}/figures/{model}-ablations.png",
            category="Ablations",
            subcategory="{city}",
            caption="../report/ablations.rst",
        ),
    log:
        "logs/{city}/plot_ablations/{model}.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/figures.py"


rule segments_geoparquet:
    input:
        segments="results/{city}/roads/segments.parquet",
    output:
        geoparquet="results/{city}/roads/segments.geoparquet",
    log:
        "logs/{city}/segments_geoparquet.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    params:
        crs=lambda wc: config["cities"][wc.city]["crs"],
    script:
        "../scripts/figures.py"
