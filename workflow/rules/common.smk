# Config validation and the small input functions every rule file uses.
#
# The JSON schema checks the config's structure; the installed plugins check what is theirs
# (each model's sections with its own config classes, task and reader names against their entry
# points) and the experiments are expanded and checked, all before any job runs: `snakemake -n`
# fails naming the key.
from pathlib import Path

from snakemake.utils import validate, min_version

from trajzoo.experiments import ExperimentError, default_experiment, expand_experiments
from trajzoo.registry import get_model, list_readers, task_class

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
# Cities with a road network (map matching, road models); a city with `osm: null` (Chengdu)
# serves raw-GPS models only.
ROAD_CITIES = [c for c in CITIES if config["cities"][c].get("osm")]


def _plugins():
    plugins = {}
    for name in MODELS:
        try:
            plugins[name] = get_model(name)
        except KeyError as exc:
            raise WorkflowError(f"models.{name}: {exc.args[0]}")
        try:
            plugins[name].check_config(config["models"][name])
        except ValueError as exc:
            raise WorkflowError(f"models.{name}.{exc}")
    return plugins


PLUGINS = _plugins()
READERS = list_readers()
for _city in CITIES:
    _fmt = config["cities"][_city]["trajectories"]["format"]
    if _fmt not in READERS:
        raise WorkflowError(f"cities.{_city}.trajectories.format: no trajectory reader {_fmt!r}; installed: {READERS}")
    for _task in config["cities"][_city]["tasks"]:
        try:
            task_class(_task)
        except KeyError as exc:
            raise WorkflowError(f"cities.{_city}.tasks: {exc.args[0]}")
try:
    EXPERIMENTS = expand_experiments(config, PLUGINS)
except ExperimentError as exc:
    raise WorkflowError(str(exc))
REFERENCE_MODEL = config["experiments"].get("reference_model")
if REFERENCE_MODEL is not None and REFERENCE_MODEL not in MODELS:
    raise WorkflowError(f"experiments.reference_model: {REFERENCE_MODEL!r} is not in models: {MODELS}")

# One pretraining per (model, variant, training cities and roles); every seed repeats it.
PRETRAININGS = {}
for _e in EXPERIMENTS:
    PRETRAININGS.setdefault((_e.model, _e.variant, _e.training), _e)
EVALS = {(e.target, e.model, e.variant, e.exp_id): e for e in EXPERIMENTS}


def alternatives(names):
    """A wildcard regex matching exactly one of ``names`` (longest first)."""
    return "|".join(sorted({n.replace(".", r"\.").replace("+", r"\+") for n in names}, key=len, reverse=True))


wildcard_constraints:
    city=alternatives(CITIES),
    model=alternatives(MODELS),
    variant=alternatives(["full"] + [v for m in MODELS for v in config["models"][m]["variants"]]),
    training=alternatives([k[2] for k in PRETRAININGS]) or "none",
    exp=alternatives([k[3] for k in EVALS]) or "none",
    task="[a-z_]+",
    seed="[0-9]+",


def model_section(model, variant):
    """The model's config section with the variant's overrides merged in."""
    mcfg = config["models"][model]
    over = mcfg["variants"].get(variant, {}) if variant != "full" else {}
    return {"hparams": {**mcfg["hparams"], **over.get("hparams", {})},
            "pretrain": {**mcfg["pretrain"], **over.get("pretrain", {})},
            "finetune": dict(mcfg["finetune"])}


def city_files(city, inputs):
    """Prepared files of a city for a model's inputs (keys of trajzoo.data.prepared.INPUT_FILES)."""
    files = {"splits": f"results/{city}/splits.parquet"}
    if "roads" in inputs:
        files.update(matched=f"results/{city}/matched.parquet",
                     structural=f"results/{city}/roads/structural.parquet",
                     attributes=f"results/{city}/roads/attributes.parquet",
                     transitions=f"results/{city}/roads/transitions.parquet")
    if "points" in inputs:
        files["points"] = f"results/{city}/points.parquet"
    if "grid" in inputs:
        files.update(grid_cells=f"results/{city}/grid/cells.parquet", grid_trips=f"results/{city}/grid/trips.parquet")
    return files


def city_preprocessing_config(city):
    """The config sections that shape a city's prepared data (for digests)."""
    c = config["cities"][city]
    return {k: c.get(k) for k in ("trajectories", "osm", "bbox", "crs", "timezone", "filters", "caps",
                                  "split", "map_matching", "pois")}


def tasks_of(city):
    return config["cities"][city]["tasks"]


def experiment_tasks(exp):
    """The target city's tasks of the kinds the experiment's model serves (embedding tasks, e.g.
    most-similar search, by every model); zero-shot keeps only tasks a pretrained model answers
    without a trained head (point and embedding tasks)."""
    kinds = set(PLUGINS[exp.model].task_kinds) | {"embedding"}
    tasks = [t for t in tasks_of(exp.target) if task_class(t).input_kind in kinds]
    if exp.setting == "zero-shot":
        tasks = [t for t in tasks if task_class(t).input_kind in ("point", "embedding")]
    return tasks


def experiment_parts(exp, seeds=None):
    """Evaluation outputs of an experiment: one CSV per (seed, task)."""
    return [f"results/{exp.target}/eval/{exp.model}/{exp.variant}/{exp.exp_id}/seed{s}/{t}.csv"
            for s in (seeds or SEEDS) for t in experiment_tasks(exp)]


def experiment_record(exp):
    """Columns of the long result format that describe an experiment."""
    return {"city": exp.target, "model": exp.model, "variant": exp.variant, "setting": exp.setting,
            "train_fraction": exp.fraction, "sources": "+".join(exp.sources) or "none"}


def parts_and_keys(experiments):
    """(parts, keys) of the given experiments, aligned: keys[i] describes parts[i]."""
    parts, keys = [], []
    for exp in experiments:
        for s in SEEDS:
            for t in experiment_tasks(exp):
                parts.append(f"results/{exp.target}/eval/{exp.model}/{exp.variant}/{exp.exp_id}/seed{s}/{t}.csv")
                keys.append(experiment_record(exp))
    return parts, keys


def model_default_experiment(model, city):
    """The experiment of results/<city>/<model>.csv (WorkflowError when there is none)."""
    exp = default_experiment([e for e in EXPERIMENTS if e.default], model, city, PLUGINS[model].default_setting)
    if exp is None:
        raise WorkflowError(f"no experiment runs model {model!r} on city {city!r} (config experiments.runs)")
    return exp


def target_cities():
    """Cities that are the target of a default experiment."""
    return sorted({e.target for e in EXPERIMENTS if e.default})


def digest_of(experiments):
    """What the given experiments' numbers depend on (config digest)."""
    cities = sorted({c for e in experiments for c in [e.target, *e.sources]})
    return {"cities": {c: city_preprocessing_config(c) for c in cities},
            "models": {e.model: model_section(e.model, e.variant) for e in experiments},
            "seeds": SEEDS, "tasks": config["tasks"], "points": config["points"], "grid": config["grid"]}


def gpu_request(wildcards):
    """GPUs of one job of a rule that runs a model (pretraining, evaluation, embeddings):
    1 when the config's device is "cuda", else 0. Use as `resources: gpu=gpu_request`.
    The SLURM executor turns gpu=1 into `sbatch --gpus=1` (`--gpus=<model>:1` when the profile
    sets the gpu_model resource) and leaves gpu=0 jobs without a GPU request. device "auto"
    requests none: it uses a GPU only where the job happens to land on one. Locally, Snakemake
    limits concurrent GPU jobs only with `--resources gpu=N` (profiles/default)."""
    return 1 if config["device"] == "cuda" else 0


def print_failed_job_logs(snakemake_log, lines=15):
    # snakemake_log: the onerror handler's `log` (Snakemake's own log file, or a list of them)
    """Print, on the terminal where Snakemake runs, the last ``lines`` lines of each failed job's
    own log (an ``onerror:`` handler), so a clear error message (file, row, problem) is seen there
    and not only at the end of a log file."""
    import re
    import sys

    paths = snakemake_log if isinstance(snakemake_log, (list, tuple)) else [snakemake_log]
    try:
        text = "\n".join(Path(p).read_text() for p in paths)
    except OSError:
        return
    for block in text.split("Error in rule ")[1:]:
        failed = block.split(":", 1)[0]
        logs = re.findall(r"^\s*log: (.+?)(?: \(check log file\(s\) for error details\))?$", block, flags=re.M)
        for path in (p.strip() for entry in logs[:1] for p in entry.split(",")):
            try:
                tail = Path(path).read_text().splitlines()[-lines:]
            except OSError:
                continue
            print(f"\n--- rule {failed} failed; last lines of {path}:", *tail, sep="\n", file=sys.stderr)
