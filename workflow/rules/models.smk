# Model stages, one pair of rules for every model (found through the trajzoo.models entry points):
#
#   results/models/<model>/<variant>/<training>/seed<s>/model.pt     one pretraining, keyed by what
#       it depends on: untrained-<city>, in-<city>, <sources>-to-<target> (cross-city) or
#       from-<sources> (zero-/few-shot: the same file for every target)
#   results/<city>/eval/<model>/<variant>/<experiment>/seed<s>/<task>.csv   one task of one experiment
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


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics="results/{city}/eval/{model}/{variant}/{exp}/seed{seed}/{task}.csv",
        history="results/{city}/eval/{model}/{variant}/{exp}/seed{seed}/{task}_history.csv",
        qc="results/{city}/eval/{model}/{variant}/{exp}/seed{seed}/{task}_qc.csv",
    log:
        "logs/{city}/eval/{model}/{variant}/{exp}/seed{seed}/{task}.log",
    benchmark:
        "benchmarks/{city}/eval/{model}/{variant}/{exp}/seed{seed}/{task}.tsv"
    conda:
        "../../envs/models.yaml"
    resources:
        gpu=gpu_request,
    params:
        job=evaluate_job,
        checkpoint_dir=lambda wc: f"results/{wc.city}/eval/{wc.model}/{wc.variant}/{wc.exp}/seed{wc.seed}/checkpoints_{wc.task}",
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
