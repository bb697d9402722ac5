# Config validation and the small input functions every rule file uses.
from pathlib import Path

from snakemake.utils import validate, min_version

min_version("9.0")

validate(config, schema="../schemas/config.schema.yaml", set_default=True)

DATA_ROOT = Path(config["data_root"])
if not DATA_ROOT.is_dir():
    raise WorkflowError(f"data_root {DATA_ROOT} does not exist or is not a folder "
                        "(set data_root in config.yaml or with --config data_root=...)")
CITIES = sorted(config["cities"])
SEEDS = [int(s) for s in (config["seed"] if isinstance(config["seed"], list) else [config["seed"]])]
if not SEEDS or len(set(SEEDS)) != len(SEEDS):
    raise WorkflowError(f"seed must be an integer or a non-empty list of distinct integers, got {config['seed']}")
MODELS = sorted(config["models"])
# Cities with a road network (map matching, road models); a city with `osm: null` (Chengdu) serves
# raw-GPS models (TransferTraj) only.
ROAD_CITIES = [c for c in CITIES if config["cities"][c].get("osm")]
SCRIPTS = Path(workflow.basedir) / "workflow" / "scripts"


def _check_city_references():
    for model, mcfg in config["models"].items():
        for variant in [mcfg] + list(mcfg["variants"].values()) + list(mcfg["ablations"].values()):
            for src in variant.get("sources", []):
                if src not in ROAD_CITIES:
                    raise WorkflowError(f"models.{model}: source city {src!r} is not a city with a road network "
                                        f"(osm) in cities: {ROAD_CITIES}")
    tt = config.get("transfertraj")
    if tt:
        for city in [tt["target"]] + tt["sources"]:
            if city not in config["cities"]:
                raise WorkflowError(f"transfertraj: city {city!r} is not in cities: {CITIES}")
        if tt["target"] in tt["sources"]:
            raise WorkflowError(f"transfertraj: the target city {tt['target']!r} is also a source city; "
                                "zero-shot would not be zero-shot")


_check_city_references()


def runs_of(model):
    """Comparison runs of a model: the model itself and one per variant ('metatrl-target-only')."""
    return [model] + [f"{model}-{v}" for v in config["models"][model]["variants"]]


def ablation_runs(model):
    """Ablation runs of a model ('metatrl-no-mke', ...), tabulated in results/<city>/<model>-ablations.csv."""
    return [f"{model}-{a}" for a in config["models"][model]["ablations"]]


COMPARISON_RUNS = [run for m in MODELS for run in runs_of(m)]
RUNS = COMPARISON_RUNS + [run for m in MODELS for run in ablation_runs(m)]

wildcard_constraints:
    city="|".join(CITIES),
    model="|".join(MODELS),
    run="|".join(sorted(RUNS, key=len, reverse=True)),
    task="[a-z_]+",
    seed="[0-9]+",


def parse_run(run):
    """'metatrl-target-only' -> ('metatrl', 'target-only'); 'metatrl' -> ('metatrl', None)."""
    for model in sorted(MODELS, key=len, reverse=True):
        if run == model:
            return model, None
        rest = run[len(model) + 1:]
        if run.startswith(model + "-") and (rest in config["models"][model]["variants"]
                                            or rest in config["models"][model]["ablations"]):
            return model, rest
    raise WorkflowError(f"unknown run {run!r}; known: {RUNS}")


def run_settings(run, seed=None):
    """Everything that defines a pretraining run: model, sources, hparams, pretrain schedule, seed
    (the first configured seed unless given)."""
    model, variant = parse_run(run)
    mcfg = config["models"][model]
    over = (mcfg["variants"].get(variant) or mcfg["ablations"][variant]) if variant else {}
    return {
        "model": model,
        "variant": variant or "default",
        "sources": list(over.get("sources", mcfg["sources"])),
        "hparams": {**mcfg["hparams"], **over.get("hparams", {})},
        "pretrain": {**mcfg["pretrain"], **over.get("pretrain", {})},
        "seed": SEEDS[0] if seed is None else int(seed),
        "device": config["device"],
    }


def city_outputs(city):
    """The Parquet files that make up a city's prepared data (input of training rules)."""
    return {
        "matched": f"results/{city}/matched.parquet",
        "splits": f"results/{city}/splits.parquet",
        "structural": f"results/{city}/roads/structural.parquet",
        "attributes": f"results/{city}/roads/attributes.parquet",
        "transitions": f"results/{city}/roads/transitions.parquet",
    }


def city_preprocessing_config(city):
    """The config sections that shape a city's prepared data (for digests)."""
    c = config["cities"][city]
    return {k: c.get(k) for k in ("trajectories", "osm", "bbox", "crs", "timezone", "filters", "caps",
                                  "split", "map_matching")}


def tasks_of(city):
    return config["cities"][city]["tasks"]


def all_result_tables():
    """Default target: every run's table for every city that has a task list and no role as
    a pure source city (cities named as sources are still prepared for pretraining)."""
    sources = {s for r in RUNS for s in run_settings(r)["sources"]}
    targets = [c for c in ROAD_CITIES if c not in sources and tasks_of(c)]
    return [f"results/{city}/{model}.csv" for city in targets for model in MODELS] + \
        [f"results/{city}/qc.md" for city in targets]


def gpu_request(wildcards):
    """GPUs of one job of a rule that runs a model (pretraining, fine-tuning, embeddings):
    1 when the config's device is "cuda", else 0. Use as `resources: gpu=gpu_request`.
    The SLURM executor turns gpu=1 into `sbatch --gpus=1` (`--gpus=<model>:1` when the profile
    sets the gpu_model resource) and leaves gpu=0 jobs without a GPU request. device "auto"
    requests none: it uses a GPU only where the job happens to land on one. Locally, Snakemake
    limits concurrent GPU jobs only with `--resources gpu=N` (workflow/profiles/default)."""
    return 1 if config["device"] == "cuda" else 0
