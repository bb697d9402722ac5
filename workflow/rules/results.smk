# Result tables (long format: city, model, variant, setting, train_fraction, sources, task,
# metric, value, n_train, n_test, seed, config_digest):
#   results/<city>/<model>.csv             the model's default setting on that target (only its own jobs)
#   results/<city>/summary.{md,csv}        every model and setting on that target
#   results/<city>/<model>-ablations.csv   the model's variants (experiments with default: false)
#   results/transfer/<model>.csv           cross-city / zero-shot / few-shot rows with the in-city value
#   results/transfer/<model>/              per setting, task and metric a matrix (CSV + Markdown)
#   results/<city>/qc.md                   the data accounting of every stage and task


def model_table_experiments(model, city):
    """The experiments of results/<city>/<model>.csv: the default experiment and, in the same
    setting and sources, every variant experiment that is part of the default target
    (``default: true``; ablations with ``default: false`` go to <model>-ablations.csv)."""
    exp = model_default_experiment(model, city)
    same = [e for e in EXPERIMENTS if e.model == model and e.target == city and e.default and e.variant != "full"
            and (e.setting, e.fraction, e.sources) == (exp.setting, exp.fraction, exp.sources)]
    return [exp] + same


def model_table_inputs(wc):
    return [p for e in model_table_experiments(wc.model, wc.city) for p in experiment_parts(e)]


rule model_table:
    input:
        parts=model_table_inputs,
    output:
        table="results/{city}/{model}.csv",
    params:
        part_keys=lambda wc: parts_and_keys(model_table_experiments(wc.model, wc.city))[1],
        digest=lambda wc: digest_of(model_table_experiments(wc.model, wc.city)),
    log:
        "logs/{city}/model_table/{model}.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/long_table.py"


def city_experiments(city, default=True):
    return [e for e in EXPERIMENTS if e.target == city and (e.default or not default)]


rule summary:
    input:
        parts=lambda wc: parts_and_keys(city_experiments(wc.city))[0],
        qc=lambda wc: [f"results/{wc.city}/qc/{s}.csv" for s in data_qc_stages(wc.city)],
    output:
        summary=report("results/{city}/summary.md", category="Summary", caption="../report/summary.rst"),
        table="results/{city}/summary.csv",
    params:
        part_keys=lambda wc: parts_and_keys(city_experiments(wc.city))[1],
        digest=lambda wc: digest_of(city_experiments(wc.city)),
        reference_model=REFERENCE_MODEL,
    log:
        "logs/{city}/summary.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/summary.py"


def ablation_experiments(model, city):
    """The model's experiments on the city in the settings its variant experiments use."""
    varied = [e for e in EXPERIMENTS if e.model == model and e.target == city and e.variant != "full"]
    keys = {(e.setting, e.fraction, e.sources) for e in varied}
    exps = [e for e in EXPERIMENTS if e.model == model and e.target == city and (e.setting, e.fraction, e.sources) in keys]
    if not exps:
        raise WorkflowError(f"no variant experiment of {model!r} on {city!r} (config experiments.runs with variants)")
    return exps


rule ablation_table:
    input:
        parts=lambda wc: parts_and_keys(ablation_experiments(wc.model, wc.city))[0],
    output:
        table="results/{city}/{model}-ablations.csv",
    params:
        part_keys=lambda wc: parts_and_keys(ablation_experiments(wc.model, wc.city))[1],
        digest=lambda wc: digest_of(ablation_experiments(wc.model, wc.city)),
    log:
        "logs/{city}/ablation_table/{model}.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/long_table.py"


def transfer_experiments(model):
    """The model's default experiments in a source setting, and its in-city ones on the same targets."""
    cross = [e for e in EXPERIMENTS if e.model == model and e.default and e.sources and e.variant == "full"]
    targets = {e.target for e in cross}
    return cross + [e for e in EXPERIMENTS if e.model == model and e.default and e.setting == "in-city"
                    and e.target in targets and e.variant == "full"]


def transfer_models():
    return sorted({e.model for e in EXPERIMENTS if e.default and e.sources})


rule transfer_table:
    input:
        parts=lambda wc: parts_and_keys(transfer_experiments(wc.model))[0],
    output:
        table="results/transfer/{model}.csv",
        matrices=directory("results/transfer/{model}"),
        heatmap=report("results/transfer/figures/{model}.png", category="Transfer matrices",
                       caption="../report/transfer.rst"),
    params:
        part_keys=lambda wc: parts_and_keys(transfer_experiments(wc.model))[1],
        digest=lambda wc: digest_of(transfer_experiments(wc.model)),
    log:
        "logs/transfer/{model}.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/transfer_table.py"


def data_qc_stages(city):
    """The data stages' QC tables of a city (those every requested view needs)."""
    stages = ["ingest", "split"]
    views = {i for e in EXPERIMENTS if e.target == city or city in e.sources for i in PLUGINS[e.model].inputs}
    if "roads" in views:
        stages.append("map_matching")
    if "points" in views:
        stages.append("points")
    if "locations" in views:
        stages.append("locations")
    return stages


def task_qc_files(city):
    """One eligibility table per task of the city (task eligibility does not depend on the model:
    the first default experiment that runs the task serves)."""
    files = {}
    for exp in city_experiments(city):
        for task in experiment_tasks(exp):
            files.setdefault(task, f"results/{city}/eval/{exp.model}/{exp.variant}/{exp.exp_id}/seed{SEEDS[0]}/{task}_qc.csv")
    return list(files.values())


rule qc_report:
    input:
        stages=lambda wc: [f"results/{wc.city}/qc/{s}.csv" for s in data_qc_stages(wc.city)],
        tasks=lambda wc: task_qc_files(wc.city),
    output:
        qc=report("results/{city}/qc.md", category="Data accounting", caption="../report/qc.rst"),
    log:
        "logs/{city}/qc_report.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/qc_report.py"


def all_result_tables():
    """Default target: per target city its models' tables, the summary and qc.md; the transfer
    tables of every model with a source setting."""
    tables = []
    for city in target_cities():
        models = sorted({e.model for e in EXPERIMENTS if e.default and e.target == city})
        tables += [f"results/{city}/{m}.csv" for m in models]
        tables += [f"results/{city}/embeddings/{m}.parquet" for m in models]
        tables += [f"results/{city}/summary.md", f"results/{city}/qc.md"]
    tables += [f"results/transfer/{m}.csv" for m in transfer_models()]
    return tables
