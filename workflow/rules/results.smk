# Stage 8: result tables. A model's main table (results/<city>/<model>.csv) is written last,
# after its variants' tables, the side-by-side summary and the city's data accounting (qc.md),
# so one command yields all of them.


def table_inputs(wc):
    inputs = {"parts": expand("results/{city}/eval/{run}/seed{seed}/{task}.csv", city=wc.city, run=wc.run,
                              task=tasks_of(wc.city), seed=SEEDS),
              "embeddings": f"results/{wc.city}/embeddings/{wc.run}.parquet"}
    model, variant = parse_run(wc.run)
    if variant is None and len(runs_of(model)) > 1:
        inputs["variants"] = [f"results/{wc.city}/{r}.csv" for r in runs_of(model)[1:]]
        inputs["summary"] = f"results/{wc.city}/summary.md"
    if variant is None:
        inputs["qc"] = f"results/{wc.city}/qc.md"
    return inputs


rule results_table:
    input:
        unpack(table_inputs),
    output:
        table="results/{city}/{run}.csv",
    params:
        settings=lambda wc: run_settings(wc.run),
        digest=lambda wc: {"city": city_preprocessing_config(wc.city),
                           "sources": {s: city_preprocessing_config(s) for s in run_settings(wc.run)["sources"]},
                           "run": run_settings(wc.run), "seeds": SEEDS,
                           "finetune": config["models"][parse_run(wc.run)[0]]["finetune"],
                           "tasks": config["tasks"]},
    log:
        "logs/{city}/results_table/{run}.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/results_table.py"


rule summary:
    input:
        parts=lambda wc: expand("results/{city}/eval/{run}/seed{seed}/{task}.csv", city=wc.city,
                                task=tasks_of(wc.city), run=COMPARISON_RUNS, seed=SEEDS),
        qc=lambda wc: [f"results/{wc.city}/qc/{s}.csv" for s in ("ingest", "map_matching", "split")],
    output:
        summary=report("results/{city}/summary.md", category="Summary", caption="../report/summary.rst"),
        table="results/{city}/summary.csv",
    params:
        model_run=MODELS[0] if "metatrl" not in MODELS else "metatrl",
        baseline_runs=[m for m in MODELS if m != "metatrl"],
    log:
        "logs/{city}/summary.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/summary.py"


rule qc_report:
    input:
        stages=lambda wc: [f"results/{wc.city}/qc/{s}.csv" for s in ("ingest", "map_matching", "split")],
        # task eligibility does not depend on the model: the first run's tables serve
        tasks=lambda wc: expand("results/{city}/qc/task_{task}_{run}_seed{seed}.csv", city=wc.city,
                                task=tasks_of(wc.city), run=RUNS[0], seed=SEEDS[0]),
    output:
        qc=report("results/{city}/qc.md", category="Data accounting", caption="../report/qc.rst"),
    log:
        "logs/{city}/qc_report.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/qc_report.py"


rule ablation_table:
    input:
        tables=lambda wc: [f"results/{wc.city}/{r}.csv" for r in runs_of(wc.model) + ablation_runs(wc.model)],
    output:
        table="results/{city}/{model}-ablations.csv",
    log:
        "logs/{city}/ablation_table/{model}.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/ablation_table.py"
