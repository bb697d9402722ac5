# Config validation and the small input functions every rule file uses.
#
# The JSON schema checks the config's structure; the installed plugins check what is theirs
# (each model's sections with its own config classes, task and reader names against their entry
# points) and the experiments are expanded and checked, all before any job runs: `snakemake -n`
# fails naming the key.
import re
import sys
from pathlib import Path

from snakemake.utils import validate, min_version

from trajzoo.config import check_city_config
from trajzoo.download import plan_inputs
from trajzoo.experiments import ExperimentError, default_experiment, expand_experiments
from trajzoo.mapmatching.fmm import resolve_ubodt_delta
from trajzoo.registry import get_model, list_readers, task_class

min_version("9.0")

validate(config, schema="../schemas/config.schema.yaml", set_default=True)

DATA_ROOT = Path(config["data_root"])
if not DATA_ROOT.is_dir():
    raise WorkflowError(
        f"data_root {DATA_ROOT} does not exist or is not a folder "
        "(set data_root in config.yaml or with --config data_root=...)"
    )
CITIES = sorted(config["cities"])
SEEDS = [
    int(s)
    for s in (config["seed"] if isinstance(config["seed"], list) else [config["seed"]])
]
if not SEEDS or len(set(SEEDS)) != len(SEEDS):
    raise WorkflowError(
        f"seed must be an integer or a non-empty list of distinct integers, got {config['seed']}"
    )
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


# What each city's values mean (bbox order and CRS area, projected CRS in metres, IANA time zone,
# split fractions, filter minimums <= maximums): checked here, naming the key.
for _city in CITIES:
    try:
        check_city_config(_city, config["cities"][_city])
    except ValueError as exc:
        raise WorkflowError(str(exc))

# The UBODT delta of every road city: `auto` (the default) derived from the city's sampling
# interval (trajzoo.mapmatching.fmm.resolve_ubodt_delta), written back as a number so every rule
# (build_ubodt, map_match_chunk, model bundles) and every digest sees the value used.
for _city in ROAD_CITIES:
    try:
        _delta, _ = resolve_ubodt_delta(config["cities"][_city])
    except ValueError as exc:
        raise WorkflowError(f"cities.{_city}.{exc}")
    config["cities"][_city]["map_matching"]["ubodt_delta"] = _delta

PLUGINS = _plugins()
READERS = list_readers()
for _city in CITIES:
    _fmt = config["cities"][_city]["trajectories"]["format"]
    if _fmt not in READERS:
        raise WorkflowError(
            f"cities.{_city}.trajectories.format: no trajectory reader {_fmt!r}; installed: {READERS}"
        )
    for _task in config["cities"][_city]["tasks"]:
        try:
            task_class(_task)
        except KeyError as exc:
            raise WorkflowError(f"cities.{_city}.tasks: {exc.args[0]}")
# Every configured input file exists (or a download rule will fetch it, downloads.enabled),
# before any job runs: the error names the file and how to get it (trajzoo.download.HOW_TO_GET).
_PROBLEMS, OSM_DOWNLOADS, TRAJECTORY_DOWNLOADS = plan_inputs(config, DATA_ROOT)
if _PROBLEMS:
    raise WorkflowError("missing input file(s):\n  " + "\n  ".join(_PROBLEMS))
try:
    EXPERIMENTS = expand_experiments(config, PLUGINS)
except ExperimentError as exc:
    raise WorkflowError(str(exc))
# Variants an installed plugin cannot run here (e.g. TrajGANR's GeoCLIP row without the optional
# geoclip package) are left out with a warning naming what to install.
_UNAVAILABLE = {}
for _name, _plugin in PLUGINS.items():
    if hasattr(_plugin, "unavailable_variants"):
        for _variant, _why in _plugin.unavailable_variants(
            config["models"][_name]
        ).items():
            _UNAVAILABLE[(_name, _variant)] = _why
for (_name, _variant), _why in sorted(_UNAVAILABLE.items()):
    print(
        f"WARNING: models.{_name}.variants.{_variant} is left out: {_why}",
        file=sys.stderr,
    )
EXPERIMENTS = [e for e in EXPERIMENTS if (e.model, e.variant) not in _UNAVAILABLE]
REFERENCE_MODEL = config["experiments"].get("reference_model")
if REFERENCE_MODEL is not None and REFERENCE_MODEL not in MODELS:
    raise WorkflowError(
        f"experiments.reference_model: {REFERENCE_MODEL!r} is not in models: {MODELS}"
    )

# One pretraining per (model, variant, training cities and roles); every seed repeats it.
PRETRAININGS = {}
for _e in EXPERIMENTS:
    PRETRAININGS.setdefault((_e.model, _e.variant, _e.training), _e)
EVALS = {(e.target, e.model, e.variant, e.exp_id): e for e in EXPERIMENTS}


def alternatives(names):
    """A wildcard regex matching exactly one of ``names`` (longest first)."""
    return "|".join(
        sorted(
            {n.replace(".", r"\.").replace("+", r"\+") for n in names},
            key=len,
            reverse=True,
        )
    )


wildcard_constraints:
    city=alternatives(CITIES),
    model=alternatives(MODELS),
    variant=alternatives(
        ["full"] + [v for m in MODELS for v in config["models"][m]["variants"]]
    ),
    training=alternatives([k[2] for k in PRETRAININGS]) or "none",
    exp=alternatives([k[3] for k in EVALS]) or "none",
    task="[a-z_]+",
    seed="[0-9]+",


def model_section(model, variant):
    """The model's config section with the variant's overrides merged in."""
    mcfg = config["models"][model]
    over = mcfg["variants"].get(variant, {}) if variant != "full" else {}
    return {
        "hparams": {**mcfg["hparams"], **over.get("hparams", {})},
        "pretrain": {**mcfg["pretrain"], **over.get("pretrain", {})},
        "finetune": dict(mcfg["finetune"]),
    }


def city_files(city, inputs):
    """Prepared files of a city for a model's inputs (keys of trajzoo.data.prepared.INPUT_FILES)."""
    files = {"splits": f"results/{city}/splits.parquet"}
    if "roads" in inputs:
        files.update(
            matched=f"results/{city}/matched.parquet",
            structural=f"results/{city}/roads/structural.parquet",
            attributes=f"results/{city}/roads/attributes.parquet",
            transitions=f"results/{city}/roads/transitions.parquet",
        )
    if "points" in inputs:
        files["points"] = f"results/{city}/points.parquet"
    if "grid" in inputs:
        files.update(
            grid_cells=f"results/{city}/grid/cells.parquet",
            grid_trips=f"results/{city}/grid/trips.parquet",
        )
    if "locations" in inputs:  # task locations (workflow/rules/locations.smk)
        files.update(
            locations=f"results/{city}/locations/locations.parquet",
            location_trips=f"results/{city}/locations/trips.parquet",
            location_frame=f"results/{city}/locations/frame.json",
        )
        if config["cities"][city].get("images"):
            files["image_features"] = f"results/{city}/images/features.npy"
    return files


def city_preprocessing_config(city):
    """The config sections that shape a city's prepared data (for digests)."""
    c = config["cities"][city]
    return {
        k: c.get(k)
        for k in (
            "trajectories",
            "osm",
            "bbox",
            "crs",
            "timezone",
            "filters",
            "caps",
            "split",
            "map_matching",
            "pois",
        )
    }


def tasks_of(city):
    return config["cities"][city]["tasks"]


def experiment_tasks(exp):
    """The target city's tasks of the kinds the experiment's model serves (embedding tasks, e.g.
    most-similar search, by every model that embeds rows); zero-shot keeps only tasks a pretrained
    model answers without a trained head (point and embedding tasks)."""
    kinds = set(PLUGINS[exp.model].task_kinds)
    if hasattr(PLUGINS[exp.model], "embed_rows"):
        kinds.add("embedding")
    tasks = [
        t
        for t in tasks_of(exp.target)
        if task_class(t).input_kind in kinds
        and set(getattr(task_class(t), "required_inputs", ()))
        <= set(PLUGINS[exp.model].inputs)
    ]
    if exp.setting == "zero-shot":
        tasks = [t for t in tasks if task_class(t).input_kind in ("point", "embedding")]
    return tasks


def experiment_parts(exp, seeds=None):
    """Evaluation outputs of an experiment: one CSV per (seed, task)."""
    return [
        f"results/{exp.target}/eval/{exp.model}/{exp.variant}/{exp.exp_id}/seed{s}/{t}.csv"
        for s in (seeds or SEEDS)
        for t in experiment_tasks(exp)
    ]


def experiment_record(exp):
    """Columns of the long result format that describe an experiment."""
    return {
        "city": exp.target,
        "model": exp.model,
        "variant": exp.variant,
        "setting": exp.setting,
        "train_fraction": exp.fraction,
        "sources": "+".join(exp.sources) or "none",
    }


def parts_and_keys(experiments):
    """(parts, keys) of the given experiments, aligned: keys[i] describes parts[i]."""
    parts, keys = [], []
    for exp in experiments:
        for s in SEEDS:
            for t in experiment_tasks(exp):
                parts.append(
                    f"results/{exp.target}/eval/{exp.model}/{exp.variant}/{exp.exp_id}/seed{s}/{t}.csv"
                )
                keys.append(experiment_record(exp))
    return parts, keys


def model_default_experiment(model, city):
    """The experiment of results/<city>/<model>.csv (WorkflowError when there is none)."""
    exp = default_experiment(
        [e for e in EXPERIMENTS if e.default],
        model,
        city,
        PLUGINS[model].default_setting,
    )
    if exp is None:
        raise WorkflowError(
            f"no experiment runs model {model!r} on city {city!r} (config experiments.runs)"
        )
    return exp


def target_cities():
    """Cities that are the target of a default experiment."""
    return sorted({e.target for e in EXPERIMENTS if e.default})


def digest_of(experiments):
    """What the given experiments' numbers depend on (config digest)."""
    cities = sorted({c for e in experiments for c in [e.target, *e.sources]})
    return {
        "cities": {c: city_preprocessing_config(c) for c in cities},
        "models": {e.model: model_section(e.model, e.variant) for e in experiments},
        "seeds": SEEDS,
        "tasks": config["tasks"],
        "points": config["points"],
        "grid": config["grid"],
        **(
            {"locations": config["locations"]}
            if any("locations" in PLUGINS[e.model].inputs for e in experiments)
            else {}
        ),
    }


def gpu_request(wildcards):
    """GPUs of one job of a model-running job (pretraining, evaluation, embeddings):
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

    paths = (
        snakemake_log if isinstance(snakemake_log, (list, tuple)) else [snakemake_log]
    )
    try:
        text = "\n".join(Path(p).read_text() for p in paths)
    except OSError:
        return
    marker = "Error in rule "  # Snakemake's line before each failed job's details
    for block in text.split(marker)[1:]:
        failed = block.split(":", 1)[0]
        logs = re.findall(
            r"^\s*log: (.+?)(?: \(check log file\(s\) for error details\))?$",
            block,
            flags=re.M,
        )
        for path in (p.strip() for entry in logs[:1] for p in entry.split(",")):
            try:
                tail = Path(path).read_text().splitlines()[-lines:]
            except OSError:
                continue
            colon = ":"
            print(
                f"\n--- rule {failed} failed; last lines of {path}{colon}",
                *tail,
                sep="\n",
                file=sys.stderr,
            )


# --- input functions of workflow/rules/roads.smk (kept here: snakemake --lint wants rule files without functions)


def osm_input(wc):
    osm = config["cities"][wc.city]["osm"]
    # with osm.overpass the file is download_osm's output (downloads.enabled) or already there
    return [DATA_ROOT / osm["file"]] if osm.get("file") else []


# --- input functions of workflow/rules/models.smk (kept here: snakemake --lint wants rule files without functions)


def pretraining_of(exp):
    return (
        f"results/models/{exp.model}/{exp.variant}/{exp.training}/seed{{seed}}/model.pt"
    )


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
            raise WorkflowError(
                f"models.{exp.model} ({exp.variant}) reads model {name!r}, which is not in models:"
            )
        key = (name, "full", f"in-{exp.pretrain_target}")
        if key not in PRETRAININGS:
            raise WorkflowError(
                f"models.{exp.model} ({exp.variant}) reads the in-city pretraining of {name!r} on "
                f"{exp.pretrain_target!r}: add an experiment running {name} in-city there"
            )
        out[name] = (
            f"results/models/{name}/full/in-{exp.pretrain_target}/seed{seed}/model.pt"
        )
    return out


def pretrain_job(wc):
    exp = PRETRAININGS[(wc.model, wc.variant, wc.training)]
    cities = exp.training_cities
    return {
        "dependencies": pretraining_dependencies(exp, wc.seed),
        "model": exp.model,
        "variant": exp.variant,
        "setting": exp.setting,
        "training": exp.training,
        "target": exp.pretrain_target,
        "sources": list(exp.pretrain_sources),
        "section": model_section(exp.model, exp.variant),
        "seed": int(wc.seed),
        "device": config["device"],
        "timezones": {c: config["cities"][c]["timezone"] for c in cities},
        "inputs": sorted(PLUGINS[exp.model].inputs),
        **training_options(),
    }


def pretrain_inputs(wc):
    exp = PRETRAININGS[(wc.model, wc.variant, wc.training)]
    files = {}
    for city in exp.training_cities:
        files.update(
            {
                f"{city}__{k}": v
                for k, v in city_files(city, PLUGINS[exp.model].inputs).items()
            }
        )
    files.update(
        {
            f"dependency__{m}": v
            for m, v in pretraining_dependencies(exp, wc.seed).items()
        }
    )
    return files


# One fine-tuning job per run (target city, model, variant, experiment, seed) fine-tunes all its
# tasks (workflow/scripts/evaluate.py, trajzoo.evaluation.evaluate_run) and writes one set of
# tables per task. A rule's outputs cannot depend on its wildcards, so runs with the same tasks
# share one rule, `evaluate_<task>_<task>...`, defined in a loop in workflow/rules/models.smk;
# each takes the threads and resources that profiles (and the command line) give `evaluate`
# (inherit_rule_settings).


def _evaluate_groups():
    """Task tuple -> the (city, model, variant, exp) runs with exactly these tasks, in order."""
    groups = {}
    for key, exp in EVALS.items():
        tasks = tuple(experiment_tasks(exp))
        if "finetune" in tasks:
            raise WorkflowError(
                "a task named 'finetune' clashes with the run log finetune.log"
            )
        if tasks:
            groups.setdefault(tasks, []).append(key)
    return groups


EVALUATE_GROUPS = _evaluate_groups()


def evaluate_rule_name(tasks):
    """Name of the fine-tuning rule of the runs with tasks ``tasks``."""
    return "evaluate_" + "_".join(tasks)


def evaluate_runs_constraint(runs):
    """Regex of the city wildcard that matches only the given (city, model, variant, exp) runs
    (a lookahead pins the rest of the run's path), so exactly one evaluate_* rule produces each
    run's files."""
    return "|".join(
        f"{re.escape(c)}(?={re.escape(rest)})"
        for c, m, v, x in runs
        for rest in [f"/eval/{m}/{v}/{x}/"]
    )


def evaluate_outputs(tasks):
    """Named outputs of a run's job: ``<task>__<kind>`` per task (trajzoo.evaluation.TASK_OUTPUTS)."""
    base = "results/{city}/eval/{model}/{variant}/{exp}/seed{seed}/"
    out = {}
    for t in tasks:
        out[f"{t}__metrics"] = f"{base}{t}.csv"
        out[f"{t}__history"] = f"{base}{t}_history.csv"
        out[f"{t}__qc"] = f"{base}{t}_qc.csv"
        # per-trip test predictions with the trip id, and the fine-tuned head (trajzoo predict)
        out[f"{t}__predictions"] = f"{base}{t}_predictions.parquet"
        out[f"{t}__head"] = f"{base}{t}_head.pt"
    return out


def evaluate_logs(tasks):
    """The run's log (loading, each task's start and duration) and one log per task."""
    base = "logs/{city}/eval/{model}/{variant}/{exp}/seed{seed}/"
    return {"finetune": f"{base}finetune.log", **{t: f"{base}{t}.log" for t in tasks}}


def inherit_rule_settings(name, template="evaluate"):
    """Give rule ``name`` the threads and resources set for ``template`` in the profiles and on the
    command line (--set-threads, --set-resources), unless ``name`` has its own. Snakemake keys
    these by rule name only; this copies the parsed entries (Snakemake 9 ResourceSettings) before
    the rule is defined. (Job groups, --groups, are set after parsing and cannot be copied.)
    """
    rs = workflow.resource_settings
    for parsed in (rs._parsed_overwrite_threads, rs._parsed_overwrite_resources):
        if template in parsed and name not in parsed:
            parsed[name] = parsed[template]


def evaluate_job(wc):
    exp = EVALS[(wc.city, wc.model, wc.variant, wc.exp)]
    return {
        "model": exp.model,
        "variant": exp.variant,
        "setting": exp.setting,
        "fraction": exp.fraction,
        "city": exp.target,
        "timezone": config["cities"][exp.target]["timezone"],
        "finetune": model_section(exp.model, exp.variant)["finetune"],
        "seed": int(wc.seed),
        "device": config["device"],
        "inputs": sorted(PLUGINS[exp.model].inputs),
        **training_options(),
    }


def evaluate_tasks(wc):
    """The run's tasks in the order its job runs them: name, options (config tasks.<name>),
    checkpoint folder and TensorBoard folder of each."""
    exp = EVALS[(wc.city, wc.model, wc.variant, wc.exp)]
    run = f"{wc.city}/eval/{wc.model}/{wc.variant}/{wc.exp}/seed{wc.seed}"
    return [
        {
            "name": t,
            "options": config["tasks"].get(t, {}),
            "checkpoint_dir": f"results/{run}/checkpoints_{t}",
            # TensorBoard (config training.tensorboard)
            "tensorboard_dir": f"logs/tensorboard/{run}/{t}",
        }
        for t in experiment_tasks(exp)
    ]


def evaluate_inputs(wc):
    exp = EVALS[(wc.city, wc.model, wc.variant, wc.exp)]
    files = {
        "model": pretraining_of(exp).format(seed=wc.seed),
        **city_files(exp.target, PLUGINS[exp.model].inputs),
    }
    if any(task_class(t).input_kind == "location" for t in experiment_tasks(exp)):
        files["features"] = (
            f"results/{wc.city}/features/{wc.model}/{wc.variant}/{wc.exp}/seed{wc.seed}/locations.pt"
        )
    return files


# Linear-interpolation reference rows of the point tasks that recover x, y (TP, TR), so the learnt
# part of a point model's error is visible: model "linear-interpolation", setting "reference",
# scored on the same test trajectories with the same points per trajectory as the point model.
REFERENCE_METHOD = "linear-interpolation"


def interpolation_parts(city, model):
    """(parts, keys) of the interpolation rows shown beside ``model`` on ``city`` (none for a road
    model or a city without TP/TR)."""
    if (
        "points" not in PLUGINS[model].inputs
        or "point" not in PLUGINS[model].task_kinds
    ):
        return [], []
    tasks = [
        t for t in tasks_of(city) if getattr(task_class(t), "recovered", None) == "xy"
    ]
    parts = [
        f"results/{city}/eval/{model}/reference/{REFERENCE_METHOD}/{t}.csv"
        for t in tasks
    ]
    keys = [
        {
            "city": city,
            "model": REFERENCE_METHOD,
            "variant": f"{model}-points",
            "setting": "reference",
            "train_fraction": 0.0,
            "sources": "none",
        }
    ] * len(tasks)
    return parts, keys


def city_interpolation_parts(city):
    """Interpolation rows of every point model on the city's default experiments."""
    parts, keys = [], []
    for model in sorted({e.model for e in city_experiments(city)}):
        p, k = interpolation_parts(city, model)
        parts += p
        keys += k
    return parts, keys


def point_max_len(model):
    """Points per trajectory the point model's collate keeps (its ``max_len`` hyperparameter)."""
    hparams = model_section(model, "full")["hparams"]
    return int(PLUGINS[model].hparams_cls.from_dict(hparams).max_len)


def interpolation_job(wc):
    """params.job of rule interpolation_baseline."""
    return {
        "city": wc.city,
        "timezone": config["cities"][wc.city]["timezone"],
        "task_options": config["tasks"].get(wc.task, {}),
        "max_len": point_max_len(wc.model),
        "seed": SEEDS[0],
    }


def model_table_experiments(model, city):
    """The experiments of results/<city>/<model>.csv: the default experiment and, in the same
    setting and sources, every variant experiment that is part of the default target
    (``default: true``; ablations with ``default: false`` go to <model>-ablations.csv).
    """
    exp = model_default_experiment(model, city)
    same = [
        e
        for e in EXPERIMENTS
        if e.model == model
        and e.target == city
        and e.default
        and e.variant != "full"
        and (e.setting, e.fraction, e.sources)
        == (exp.setting, exp.fraction, exp.sources)
    ]
    return [exp] + same


def model_table_inputs(wc):
    exps = model_table_experiments(wc.model, wc.city)
    return [p for e in exps for p in experiment_parts(e)] + interpolation_parts(
        wc.city, wc.model
    )[0]


def city_experiments(city, default=True):
    return [e for e in EXPERIMENTS if e.target == city and (e.default or not default)]


def ablation_experiments(model, city):
    """The model's experiments on the city in the settings its variant experiments use."""
    varied = [
        e
        for e in EXPERIMENTS
        if e.model == model and e.target == city and e.variant != "full"
    ]
    keys = {(e.setting, e.fraction, e.sources) for e in varied}
    exps = [
        e
        for e in EXPERIMENTS
        if e.model == model
        and e.target == city
        and (e.setting, e.fraction, e.sources) in keys
    ]
    if not exps:
        raise WorkflowError(
            f"no variant experiment of {model!r} on {city!r} (config experiments.runs with variants)"
        )
    return exps


def transfer_experiments(model):
    """The model's default experiments in a source setting, and its in-city ones on the same targets."""
    cross = [
        e
        for e in EXPERIMENTS
        if e.model == model and e.default and e.sources and e.variant == "full"
    ]
    targets = {e.target for e in cross}
    return cross + [
        e
        for e in EXPERIMENTS
        if e.model == model
        and e.default
        and e.setting == "in-city"
        and e.target in targets
        and e.variant == "full"
    ]


def transfer_models():
    return sorted({e.model for e in EXPERIMENTS if e.default and e.sources})


def data_qc_stages(city):
    """The data stages' QC tables of a city (those every requested view needs)."""
    stages = ["ingest", "split"]
    views = {
        i
        for e in EXPERIMENTS
        if e.target == city or city in e.sources
        for i in PLUGINS[e.model].inputs
    }
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
            files.setdefault(
                task,
                f"results/{city}/eval/{exp.model}/{exp.variant}/{exp.exp_id}/seed{SEEDS[0]}/{task}_qc.csv",
            )
    return list(files.values())


def all_result_tables():
    """Default target: per target city its models' tables, the summary and qc.md; the transfer
    tables of every model with a source setting."""
    tables = []
    for city in target_cities():
        models = sorted(
            {e.model for e in EXPERIMENTS if e.default and e.target == city}
        )
        tables += [f"results/{city}/{m}.csv" for m in models]
        tables += [f"results/{city}/embeddings/{m}.parquet" for m in models]
        tables += [f"results/{city}/summary.md", f"results/{city}/qc.md"]
    tables += [f"results/transfer/{m}.csv" for m in transfer_models()]
    return tables


# --- input functions of workflow/rules/report.smk (kept here: snakemake --lint wants rule files without functions)


def loss_curve_runs(city):
    """Label -> (pretraining history, fine-tuning histories) of the city's default experiments
    (first seed), one entry per model and setting."""
    runs = {}
    for exp in city_experiments(city):
        label = (
            f"{exp.model} ({exp.exp_id})"
            if exp.variant == "full"
            else f"{exp.model}/{exp.variant} ({exp.exp_id})"
        )
        base = (
            f"results/{city}/eval/{exp.model}/{exp.variant}/{exp.exp_id}/seed{SEEDS[0]}"
        )
        runs[label] = (
            pretraining_of(exp)
            .format(seed=SEEDS[0])
            .replace("model.pt", "pretrain_history.csv"),
            [f"{base}/{t}_history.csv" for t in experiment_tasks(exp)],
        )
    return runs


def report_figures():
    cities = target_cities()
    figures = [
        f"results/{c}/figures/{f}.png" for c in cities for f in ("losses", "metrics")
    ]
    prepared = sorted(
        {
            c
            for e in EXPERIMENTS
            if e.default and "roads" in PLUGINS[e.model].inputs
            for c in [e.target, *e.sources]
        }
    )
    figures += [
        f"results/{c}/figures/{f}.png"
        for c in prepared
        for f in ("network", "map_matching")
    ]
    figures += [f"results/transfer/figures/{m}.png" for m in transfer_models()]
    return figures


def training_options():
    """``{"training_options": config["training"]}`` when any run-wide training option is set (mixed
    precision, loader workers, TensorBoard), else nothing, so that runs made before these options
    existed keep their parameters and are not rerun."""
    opts = {
        k: v
        for k, v in (config.get("training") or {}).items()
        if v not in (None, False)
    }
    return {"training_options": opts} if opts else {}


def city_default_models(city):
    return sorted({e.model for e in EXPERIMENTS if e.default and e.target == city})


def tte_prediction_files(city):
    """Label -> tte_predictions.parquet of the city's default experiments (first seed) with TTE."""
    out = {}
    for exp in city_experiments(city):
        if exp.variant == "full" and "tte" in experiment_tasks(exp):
            out[f"{exp.model} ({exp.exp_id})"] = (
                f"results/{city}/eval/{exp.model}/{exp.variant}/{exp.exp_id}/"
                f"seed{SEEDS[0]}/tte_predictions.parquet"
            )
    return out


def more_figures():
    """The figures above, for the target all (ablation charts only on request: the ablations are not
    default experiments: snakemake results/porto/figures/metatrl-ablations.png)."""
    prepared = sorted(
        {
            c
            for e in EXPERIMENTS
            if e.default and "roads" in PLUGINS[e.model].inputs
            for c in [e.target, *e.sources]
        }
    )
    out = [
        f"results/{c}/figures/{f}"
        for c in prepared
        for f in ("routes.html", "gps_road_distances.png")
    ]
    out += [f"results/{c}/roads/segments.geoparquet" for c in prepared]
    for c in target_cities():
        out.append(f"results/{c}/figures/embeddings.png")
        if tte_prediction_files(c):
            out.append(f"results/{c}/figures/tte.png")
    return out


def location_images(wc):
    images = config["cities"][wc.city].get("images")
    if not images:
        return []
    return [f"results/{wc.city}/images/images.csv"]


def image_model():
    """The model whose plugin fetches and encodes street-view images (the first that can)."""
    for name, plugin in PLUGINS.items():
        if hasattr(plugin, "image_features"):
            return name
    raise WorkflowError(
        "street-view images are configured, but no installed model encodes images"
    )


def bundle_inputs(wc):
    exp = PRETRAININGS[(wc.model, wc.variant, wc.training)]
    city = bundle_city(exp)
    files = {
        "model": f"results/models/{wc.model}/{wc.variant}/{wc.training}/seed{wc.seed}/model.pt"
    }
    if city is None:
        return files
    if "roads" in PLUGINS[exp.model].inputs:
        files.update(
            {
                t: f"results/{city}/roads/{t}.parquet"
                for t in (
                    "segments",
                    "adjacency",
                    "structural",
                    "attributes",
                    "transitions",
                )
            }
        )
    else:
        if config["cities"][city].get("osm"):
            files["context_segments"] = f"results/{city}/roads/segments.parquet"
        files["pois"] = [
            str(DATA_ROOT / p) for p in config["cities"][city].get("pois") or []
        ]
    return files


def bundle_city(exp):
    """The city whose views a bundle's model reads new trips in: the training target, else the
    first source (source-only pretrainings of point models)."""
    return exp.pretrain_target or (list(exp.pretrain_sources) or [None])[0]


def bundle_meta(wc):
    exp = PRETRAININGS[(wc.model, wc.variant, wc.training)]
    city = bundle_city(exp)
    c = config["cities"][city]
    return {
        "model": exp.model,
        "variant": exp.variant,
        "training": exp.training,
        "setting": exp.setting,
        "target": exp.pretrain_target,
        "sources": list(exp.pretrain_sources),
        "seed": int(wc.seed),
        "hparams": model_section(exp.model, exp.variant)["hparams"],
        "inputs": sorted(PLUGINS[exp.model].inputs),
        "city": city,
        "points": config["points"],
        "city_config": {
            k: c.get(k)
            for k in ("crs", "timezone", "bbox", "filters", "map_matching", "osm")
        },
        "config": digest_of([exp]),
    }


def model_bundles():
    """The bundle of every model's default-setting pretraining on every target city (rule all)."""
    out = set()
    for exp in EXPERIMENTS:
        if exp.default:
            d = model_default_experiment(exp.model, exp.target)
            out.add(
                pretraining_of(d).format(seed=SEEDS[0]).removesuffix("model.pt")
                + "bundle"
            )
    return sorted(out)
