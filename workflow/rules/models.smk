# Model stages, one pair of rules for every model (found through the trajzoo.models entry points):
#
#   results/models/<model>/<variant>/<training>/seed<s>/model.pt     one pretraining, keyed by what
#       it depends on: untrained-<city>, in-<city>, <sources>-to-<target> (cross-city) or
#       from-<sources> (zero-/few-shot: the same file for every target)
#   results/<city>/eval/<model>/<variant>/<experiment>/seed<s>/<task>.csv   one task of one experiment
#   results/<city>/embeddings/<model>.parquet                         trip id -> embedding (default setting)


def pretraining_of(exp):
    return f"results/models/{exp.model}/{exp.variant}/{exp.training}/seed{{seed}}/model.pt"


def pretraining_dependencies(exp, seed):
    """Pretrainings of other zoo models that this pretraining reads (a plugin's
    ``depends_on(section)``, e.g. TrajGANR's trajectory-foundation-model baseline pooling
    TransferTraj's point representations): model name -> that model's in-city model.pt on the
    same target and seed."""
    depends = getattr(PLUGINS[exp.model], "depends_on", None)
    names = depends(model_section(exp.model, exp.variant)) if depends else []
    out = {}
    for name in names:
        if name not in PLUGINS:
            raise WorkflowError(f"models.{exp.model} ({exp.variant}) reads model {name!r}, which is not in models:")
        key = (name, "full", f"in-{exp.pretrain_target}")
        if key not in PRETRAININGS:
            raise WorkflowError(f"models.{exp.model} ({exp.variant}) reads the in-city pretraining of {name!r} on "
                                f"{exp.pretrain_target!r}: add an experiment running {name} in-city there")
        out[name] = f"results/models/{name}/full/in-{exp.pretrain_target}/seed{seed}/model.pt"
    return out


def pretrain_job(wc):
    exp = PRETRAININGS[(wc.model, wc.variant, wc.training)]
    cities = exp.training_cities
    return {"dependencies": pretraining_dependencies(exp, wc.seed),"model": exp.model, "variant": exp.variant, "setting": exp.setting, "training": exp.training,
            "target": exp.pretrain_target, "sources": list(exp.pretrain_sources),
            "section": model_section(exp.model, exp.variant), "seed": int(wc.seed), "device": config["device"],
            "timezones": {c: config["cities"][c]["timezone"] for c in cities},
            "inputs": sorted(PLUGINS[exp.model].inputs)}


def pretrain_inputs(wc):
    exp = PRETRAININGS[(wc.model, wc.variant, wc.training)]
    files = {}
    for city in exp.training_cities:
        files.update({f"{city}__{k}": v for k, v in city_files(city, PLUGINS[exp.model].inputs).items()})
    files.update({f"dependency__{m}": v for m, v in pretraining_dependencies(exp, wc.seed).items()})
    return files


rule pretrain:
    input:
        unpack(pretrain_inputs),
    output:
        model="results/models/{model}/{variant}/{training}/seed{seed}/model.pt",
        history="results/models/{model}/{variant}/{training}/seed{seed}/pretrain_history.csv",
    params:
        job=pretrain_job,
        checkpoint_dir=lambda wc: f"results/models/{wc.model}/{wc.variant}/{wc.training}/seed{wc.seed}/checkpoints",
    resources:
        gpu=gpu_request,
    log:
        "logs/models/{model}/{variant}/{training}/seed{seed}/pretrain.log",
    benchmark:
        "benchmarks/models/{model}/{variant}/{training}/seed{seed}/pretrain.tsv"
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/pretrain.py"


def evaluate_job(wc):
    exp = EVALS[(wc.city, wc.model, wc.variant, wc.exp)]
    return {"model": exp.model, "variant": exp.variant, "setting": exp.setting, "fraction": exp.fraction,
            "city": exp.target, "timezone": config["cities"][exp.target]["timezone"],
            "finetune": model_section(exp.model, exp.variant)["finetune"],
            "task_options": config["tasks"].get(wc.task, {}), "seed": int(wc.seed), "device": config["device"],
            "inputs": sorted(PLUGINS[exp.model].inputs)}


def evaluate_inputs(wc):
    exp = EVALS[(wc.city, wc.model, wc.variant, wc.exp)]
    if wc.task not in experiment_tasks(exp):
        raise WorkflowError(f"task {wc.task!r} is not a task of experiment {wc.model}/{wc.variant}/{wc.exp} "
                            f"on {wc.city} (its tasks: {experiment_tasks(exp)})")
    files = {"model": pretraining_of(exp).format(seed=wc.seed), **city_files(exp.target, PLUGINS[exp.model].inputs)}
    if task_class(wc.task).input_kind == "location":
        files["features"] = f"results/{wc.city}/features/{wc.model}/{wc.variant}/{wc.exp}/seed{wc.seed}/locations.pt"
    return files


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics="results/{city}/eval/{model}/{variant}/{exp}/seed{seed}/{task}.csv",
        history="results/{city}/eval/{model}/{variant}/{exp}/seed{seed}/{task}_history.csv",
        qc="results/{city}/eval/{model}/{variant}/{exp}/seed{seed}/{task}_qc.csv",
    params:
        job=evaluate_job,
        checkpoint_dir=lambda wc: f"results/{wc.city}/eval/{wc.model}/{wc.variant}/{wc.exp}/seed{wc.seed}/checkpoints_{wc.task}",
    resources:
        gpu=gpu_request,
    log:
        "logs/{city}/eval/{model}/{variant}/{exp}/seed{seed}/{task}.log",
    benchmark:
        "benchmarks/{city}/eval/{model}/{variant}/{exp}/seed{seed}/{task}.tsv"
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/evaluate.py"


rule location_features:
    # frozen per-location features of a model (location tasks), computed once and shared by the
    # heads of every location task (trajzoo.registry.LocationModel.location_features)
    input:
        unpack(lambda wc: {"model": pretraining_of(EVALS[(wc.city, wc.model, wc.variant, wc.exp)]).format(seed=wc.seed),
                           **city_files(wc.city, PLUGINS[wc.model].inputs)}),
    output:
        features="results/{city}/features/{model}/{variant}/{exp}/seed{seed}/locations.pt",
    params:
        job=lambda wc: {"model": wc.model, "city": wc.city, "timezone": config["cities"][wc.city]["timezone"],
                        "seed": int(wc.seed), "device": config["device"], "inputs": sorted(PLUGINS[wc.model].inputs)},
    resources:
        gpu=gpu_request,
    log:
        "logs/{city}/features/{model}/{variant}/{exp}/seed{seed}/locations.log",
    benchmark:
        "benchmarks/{city}/features/{model}/{variant}/{exp}/seed{seed}/locations.tsv"
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/location_features.py"


rule embed:
    input:
        unpack(lambda wc: {"model": pretraining_of(model_default_experiment(wc.model, wc.city)).format(seed=SEEDS[0]),
                           **city_files(wc.city, PLUGINS[wc.model].inputs)}),
    output:
        embeddings="results/{city}/embeddings/{model}.parquet",
    params:
        job=lambda wc: {"model": wc.model, "city": wc.city, "timezone": config["cities"][wc.city]["timezone"],
                        "seed": SEEDS[0], "device": config["device"], "inputs": sorted(PLUGINS[wc.model].inputs)},
    resources:
        gpu=gpu_request,
    log:
        "logs/{city}/embed/{model}.log",
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/embed.py"
