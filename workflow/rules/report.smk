# Figures for `snakemake --report results/report.html` (Snakemake's own report).


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


rule plot_losses:
    input:
        pretrain=lambda wc: [f"results/{wc.city}/models/{r}/seed{SEEDS[0]}/pretrain_history.csv"
                             for r in COMPARISON_RUNS],
        finetune=lambda wc: expand("results/{city}/eval/{run}/seed{seed}/{task}_history.csv", city=wc.city,
                                   run=COMPARISON_RUNS, task=tasks_of(wc.city), seed=SEEDS[0]),
    output:
        figure=report("results/{city}/figures/losses.png", category="Training", subcategory="{city}",
                      caption="../report/losses.rst"),
    params:
        runs=COMPARISON_RUNS,
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
    targets = [c for c in all_result_tables() if c.endswith(".csv")]
    cities = sorted({t.split("/")[1] for t in targets})
    figures = [f"results/{c}/figures/{f}.png" for c in cities for f in ("losses", "metrics")]
    prepared = sorted(set(cities) | {s for r in RUNS for s in run_settings(r)["sources"]})
    figures += [f"results/{c}/figures/{f}.png" for c in prepared for f in ("network", "map_matching")]
    return figures
