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
