# Figures of `snakemake --report results/report.html`: maps of the road networks with matched
# trajectories, map-matching statistics, loss curves and metric bars per target city, and the
# transfer-matrix heatmaps (results/transfer/figures/<model>.png, rule transfer_table).


rule plot_network:
    input:
        segments="results/{city}/roads/segments.parquet",
        matched="results/{city}/matched.parquet",
    output:
        figure=report("results/{city}/figures/network.png", category="Maps", subcategory="{city}",
                      caption="../report/network.rst"),
    log:
        "logs/{city}/plot_network.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/plot_figures.py"


rule plot_map_matching:
    input:
        stats="results/{city}/qc/map_matching_stats.parquet",
    output:
        figure=report("results/{city}/figures/map_matching.png", category="Map matching", subcategory="{city}",
                      caption="../report/map_matching.rst"),
    log:
        "logs/{city}/plot_map_matching.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/plot_figures.py"


def loss_curve_runs(city):
    """Label -> (pretraining history, fine-tuning histories) of the city's default experiments
    (first seed), one entry per model and setting."""
    runs = {}
    for exp in city_experiments(city):
        label = f"{exp.model} ({exp.exp_id})" if exp.variant == "full" else f"{exp.model}/{exp.variant} ({exp.exp_id})"
        base = f"results/{city}/eval/{exp.model}/{exp.variant}/{exp.exp_id}/seed{SEEDS[0]}"
        runs[label] = (pretraining_of(exp).format(seed=SEEDS[0]).replace("model.pt", "pretrain_history.csv"),
                       [f"{base}/{t}_history.csv" for t in experiment_tasks(exp)])
    return runs


rule plot_losses:
    input:
        pretrain=lambda wc: sorted({p for p, _ in loss_curve_runs(wc.city).values()}),
        finetune=lambda wc: [f for _, fs in loss_curve_runs(wc.city).values() for f in fs],
    output:
        figure=report("results/{city}/figures/losses.png", category="Training", subcategory="{city}",
                      caption="../report/losses.rst"),
    params:
        runs=lambda wc: loss_curve_runs(wc.city),
    log:
        "logs/{city}/plot_losses.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/plot_figures.py"


rule plot_metrics:
    input:
        table="results/{city}/summary.csv",
    output:
        figure=report("results/{city}/figures/metrics.png", category="Summary", subcategory="{city}",
                      caption="../report/metrics.rst"),
    log:
        "logs/{city}/plot_metrics.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/plot_figures.py"


def report_figures():
    cities = target_cities()
    figures = [f"results/{c}/figures/{f}.png" for c in cities for f in ("losses", "metrics")]
    prepared = sorted({c for e in EXPERIMENTS if e.default and "roads" in PLUGINS[e.model].inputs
                       for c in [e.target, *e.sources]})
    figures += [f"results/{c}/figures/{f}.png" for c in prepared for f in ("network", "map_matching")]
    figures += [f"results/transfer/figures/{m}.png" for m in transfer_models()]
    return figures
