# TransferTraj (arXiv 2505.12672) on raw GPS points, no map matching: per-point features, a
# seeded split of the ingested trips, pretraining (in-city, or on the source cities only),
# fine-tuning/evaluation per transfer setting and task, and results/<target>/transfertraj.csv.
#
#   results/<city>/points.parquet                                  per-point x, y, time, road, POI context
#   results/<city>/gps_splits.parquet                              train/val/test of those trips
#   results/<target>/transfertraj/<variant>/pretrain-<in-city|sources>/seed<s>/model.pt
#   results/<target>/transfertraj/<variant>/eval/<setting>/seed<s>/<task>.csv
#   results/<target>/transfertraj.csv                              one row per setting, variant, task, metric

TT = config.get("transfertraj")


def tt_few_shot_key(fraction):
    """0.05 -> 'few-shot-5' (percent of the target's train split)."""
    return f"few-shot-{fraction * 100:g}"


def tt_settings():
    """Setting key -> (pretraining, fraction of the target's train split used for fine-tuning)."""
    settings = {"in-city": ("in-city", 1.0), "zero-shot": ("sources", 0.0)}
    settings.update({tt_few_shot_key(f): ("sources", float(f)) for f in TT["few_shot"]})
    return settings


def tt_variants():
    """'full' and the ablation variants."""
    return ["full"] + sorted(TT["ablations"])


def tt_eval_keys():
    """(variant, setting) pairs of the table: every setting for the full model, the configured
    ablation settings for each ablation."""
    keys = [("full", s) for s in tt_settings()]
    keys += [(v, s) for v in sorted(TT["ablations"]) for s in TT["ablation_settings"]]
    return keys


def tt_pretrain_cities(wc):
    return [wc.city] if wc.pre == "in-city" else list(TT["sources"])


def tt_hparams(variant):
    return {**TT["hparams"], **(TT["ablations"][variant] if variant != "full" else {})}


def transfertraj_tables():
    """results/<target>/transfertraj.csv when the config has a transfertraj section."""
    return [f"results/{TT['target']}/transfertraj.csv"] if TT else []


if TT:

    wildcard_constraints:
        variant="|".join(["full"] + sorted(TT["ablations"], key=len, reverse=True)),
        pre="in-city|sources",
        setting="in-city|zero-shot|few-shot-[0-9.]+",


    rule gps_points:
        input:
            trips="results/{city}/trips.parquet",
            segments=lambda wc: ["results/{city}/roads/segments.parquet"] if wc.city in ROAD_CITIES else [],
            pois=lambda wc: [DATA_ROOT / p for p in config["cities"][wc.city]["pois"]],
        output:
            points="results/{city}/points.parquet",
            qc="results/{city}/qc/points.csv",
        params:
            crs=lambda wc: config["cities"][wc.city]["crs"],
            timezone=lambda wc: config["cities"][wc.city]["timezone"],
            radii=TT["points"],
        log:
            "logs/{city}/gps_points.log",
        benchmark:
            "benchmarks/{city}/gps_points.tsv"
        conda:
            "../../envs/core.yaml"
        script:
            "../scripts/gps_points.py"


    rule gps_split:
        input:
            points="results/{city}/points.parquet",
        output:
            splits="results/{city}/gps_splits.parquet",
            qc="results/{city}/qc/gps_split.csv",
        params:
            split=lambda wc: config["cities"][wc.city]["split"],
            max_train_trips=lambda wc: config["cities"][wc.city]["caps"]["max_train_trips"],
        log:
            "logs/{city}/gps_split.log",
        conda:
            "../../envs/core.yaml"
        script:
            "../scripts/split_trips.py"


    rule transfertraj_pretrain:
        input:
            points=lambda wc: [f"results/{c}/points.parquet" for c in tt_pretrain_cities(wc)],
            splits=lambda wc: [f"results/{c}/gps_splits.parquet" for c in tt_pretrain_cities(wc)],
        output:
            model="results/{city}/transfertraj/{variant}/pretrain-{pre}/seed{seed}/model.pt",
            history="results/{city}/transfertraj/{variant}/pretrain-{pre}/seed{seed}/pretrain_history.csv",
        params:
            cities=tt_pretrain_cities,
            hparams=lambda wc: tt_hparams(wc.variant),
            pretrain=TT["pretrain"],
            device=config["device"],
            checkpoint_dir=lambda wc: f"results/{wc.city}/transfertraj/{wc.variant}/pretrain-{wc.pre}/seed{wc.seed}/checkpoints",
        threads: 2
        resources:
            gpu=gpu_request,
        log:
            "logs/{city}/transfertraj/{variant}/pretrain-{pre}/seed{seed}.log",
        benchmark:
            "benchmarks/{city}/transfertraj/{variant}/pretrain-{pre}/seed{seed}.tsv"
        conda:
            "../../envs/models.yaml"
        script:
            "../scripts/transfertraj_pretrain.py"


    rule transfertraj_evaluate:
        input:
            model=lambda wc: (f"results/{wc.city}/transfertraj/{wc.variant}/pretrain-"
                              f"{tt_settings()[wc.setting][0]}/seed{wc.seed}/model.pt"),
            points="results/{city}/points.parquet",
            splits="results/{city}/gps_splits.parquet",
        output:
            metrics="results/{city}/transfertraj/{variant}/eval/{setting}/seed{seed}/{task}.csv",
            history="results/{city}/transfertraj/{variant}/eval/{setting}/seed{seed}/{task}_history.csv",
            qc="results/{city}/qc/transfertraj_task_{task}_{variant}_{setting}_seed{seed}.csv",
        params:
            fraction=lambda wc: tt_settings()[wc.setting][1],
            finetune=TT["finetune"],
            device=config["device"],
            checkpoint_dir=lambda wc: f"results/{wc.city}/transfertraj/{wc.variant}/eval/{wc.setting}/seed{wc.seed}/checkpoints_{wc.task}",
        threads: 1
        resources:
            gpu=gpu_request,
        log:
            "logs/{city}/transfertraj/{variant}/eval/{setting}/seed{seed}/{task}.log",
        benchmark:
            "benchmarks/{city}/transfertraj/{variant}/eval/{setting}/seed{seed}/{task}.tsv"
        conda:
            "../../envs/models.yaml"
        script:
            "../scripts/transfertraj_evaluate.py"


    rule transfertraj_table:
        input:
            parts=lambda wc: [f"results/{wc.city}/transfertraj/{v}/eval/{s}/seed{seed}/{task}.csv"
                              for v, s in tt_eval_keys() for seed in SEEDS for task in TT["tasks"]],
        output:
            table=report("results/{city}/transfertraj.csv", category="TransferTraj",
                         caption="../report/transfertraj.rst"),
        params:
            eval_keys=lambda wc: [{"variant": v, "setting": s, "pretrain": tt_settings()[s][0],
                              "train_fraction": tt_settings()[s][1], "seed": seed, "task": task}
                             for v, s in tt_eval_keys() for seed in SEEDS for task in TT["tasks"]],
            sources=TT["sources"] if TT else [],
            digest={"transfertraj": TT, "cities": {c: city_preprocessing_config(c)
                                                   for c in ([TT["target"]] + TT["sources"])}} if TT else {},
        log:
            "logs/{city}/transfertraj_table.log",
        conda:
            "../../envs/core.yaml"
        script:
            "../scripts/transfertraj_table.py"
