# Model stages, one pair of rules for every model (found through the trajzoo.models entry points):
#
#   results/models/<model>/<variant>/<training>/seed<s>/model.pt     one pretraining, keyed by what
#       it depends on: untrained-<city>, in-<city>, <sources>-to-<target> (cross-city) or
#       from-<sources> (zero-/few-shot: the same file for every target)
#   results/<city>/eval/<model>/<variant>/<experiment>/seed<s>/<task>.csv   one task of one experiment
#       (all tasks of one experiment and seed: one job)
#   results/<city>/embeddings/<model>.parquet                         trip id -> embedding (default setting)


rule pretrain:
    input:
        unpack(pretrain_inputs),
    output:
        model="results/models/{model}/{variant}/{training}/seed{seed}/model.pt",
        history="results/models/{model}/{variant}/{training}/seed{seed}/pretrain_history.csv",
    log:
        "logs/models/{model}/{variant}/{training}/seed{seed}/pretrain.log",
    benchmark:
        "benchmarks/models/{model}/{variant}/{training}/seed{seed}/pretrain.tsv"
    conda:
        "../../envs/models.yaml"
    resources:
        gpu=gpu_request,
    params:
        job=pretrain_job,
        checkpoint_dir=lambda wc: f"results/models/{wc.model}/{wc.variant}/{wc.training}/seed{wc.seed}/checkpoints",
    script:
        "../scripts/pretrain.py"


# Fine-tuning: ONE job per run (target city, model, variant, experiment, seed) loads the city and
# the model once and fine-tunes the run's tasks one after the other, each from the loaded model
# and the same RNG state (trajzoo.evaluation.evaluate_run), writing one set of tables per task.
# Runs with the same tasks share a rule evaluate_<tasks> (outputs cannot depend on wildcards);
# threads and resources: profiles/default `evaluate`.
for _tasks, _runs in EVALUATE_GROUPS.items():
    inherit_rule_settings(evaluate_rule_name(_tasks))

    rule:
        name:
            evaluate_rule_name(_tasks)
        input:
            unpack(evaluate_inputs),
        output:
            **evaluate_outputs(_tasks),
        log:
            **evaluate_logs(_tasks),
        benchmark:
            "benchmarks/{city}/eval/{model}/{variant}/{exp}/seed{seed}/finetune.tsv"
        wildcard_constraints:
            city=evaluate_runs_constraint(_runs),
        conda:
            "../../envs/models.yaml"
        resources:
            gpu=gpu_request,
        params:
            job=evaluate_job,
            tasks=evaluate_tasks,
        script:
            "../scripts/evaluate.py"


rule location_features:
    # frozen per-location features of a model (location tasks), computed once and shared by the
    # heads of every location task (trajzoo.registry.LocationModel.location_features)
    input:
        unpack(
            lambda wc: {
                "model": pretraining_of(
                    EVALS[(wc.city, wc.model, wc.variant, wc.exp)]
                ).format(seed=wc.seed),
                **city_files(wc.city, PLUGINS[wc.model].inputs),
            }
        ),
    output:
        features="results/{city}/features/{model}/{variant}/{exp}/seed{seed}/locations.pt",
    log:
        "logs/{city}/features/{model}/{variant}/{exp}/seed{seed}/locations.log",
    benchmark:
        "benchmarks/{city}/features/{model}/{variant}/{exp}/seed{seed}/locations.tsv"
    conda:
        "../../envs/models.yaml"
    resources:
        gpu=gpu_request,
    params:
        job=lambda wc: {
            "model": wc.model,
            "city": wc.city,
            "timezone": config["cities"][wc.city]["timezone"],
            "seed": int(wc.seed),
            "device": config["device"],
            "inputs": sorted(PLUGINS[wc.model].inputs),
        },
    script:
        "../scripts/location_features.py"


rule embed:
    input:
        unpack(
            lambda wc: {
                "model": pretraining_of(
                    model_default_experiment(wc.model, wc.city)
                ).format(seed=SEEDS[0]),
                **city_files(wc.city, PLUGINS[wc.model].inputs),
            }
        ),
    output:
        embeddings="results/{city}/embeddings/{model}.parquet",
    log:
        "logs/{city}/embed/{model}.log",
    conda:
        "../../envs/models.yaml"
    resources:
        gpu=gpu_request,
    params:
        job=lambda wc: {
            "model": wc.model,
            "city": wc.city,
            "timezone": config["cities"][wc.city]["timezone"],
            "seed": SEEDS[0],
            "device": config["device"],
            "inputs": sorted(PLUGINS[wc.model].inputs),
        },
    script:
        "../scripts/embed.py"


# A trained model as one self-contained folder (trajzoo.bundle): weights, hyperparameters, the road
# tables and graph it was trained with (road models) or the road/POI context of its city (point
# models), training cities, seed and config digest. `trajzoo embed` / trajzoo.load_model read it.
# Its own cheap rule, so that building it never reruns a pretraining.
rule model_bundle:
    input:
        unpack(bundle_inputs),
    output:
        bundle=directory(
            "results/models/{model}/{variant}/{training}/seed{seed}/bundle"
        ),
    log:
        "logs/models/{model}/{variant}/{training}/seed{seed}/bundle.log",
    localrule: True
    conda:
        "../../envs/models.yaml"
    params:
        meta=bundle_meta,
        osm=lambda wc: (
            lambda c: str(DATA_ROOT / c["osm"]["file"]) if c.get("osm") else None
        )(
            config["cities"][
                bundle_city(PRETRAININGS[(wc.model, wc.variant, wc.training)])
            ]
        ),
    script:
        "../scripts/model_bundle.py"
