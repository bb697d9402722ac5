"""Downstream evaluation of any model on any task it serves: the body of the ``evaluate`` rule.

One ``evaluate`` job per run (target city, model, variant, experiment, seed): :func:`evaluate_run`
loads the city's prepared views and the pretrained model ONCE (:func:`load_run`), then fine-tunes
and scores the run's tasks one after the other in a fixed order, each from a fresh copy of the
loaded model and from the global RNG state the loading left (restored before every task), so that
each task's tables are the ones a job of that task alone writes, byte for byte, for every model
kind: road models and SIM (tests/core/test_evaluation_run.py: MetaTRL, START, Transformer-MLM),
TransferTraj's point tasks and SIM on a real Porto slice, in-city and few-shot
(tests/transfertraj/test_transfertraj_evaluation_run.py), SMARTraj2's road and segment tasks
(tests/smartraj2/test_smartraj2_evaluation_run.py) and TrajGANR's location tasks, which share the
run's frozen location features (tests/trajganr/test_trajganr_evaluation_run.py). Without the copy
a later task starts from the weights an earlier one fine-tuned (SIM embeds with them); without the
restore it continues the earlier task's random streams (e.g. TransferTraj's SC-MoE gate noise and
dropout draw from the global torch RNG).

The carry-over once seen on the real slice (TransferTraj on Porto: in-city TR after TP, MAE 163.65
vs 163.70 m of its one-task job; few-shot SIM, mean rank 3.64 vs 3.58) was not state outside the
model copy: the two jobs of that comparison run ran while this module was being edited (the
packages are installed editable, so each job imports the code as it is when it starts). The
in-city job's 16 tables are reproduced bit for bit by this loop without the RNG restore, the
few-shot job's 16 by this loop without the model copy; with both, as committed, the same two
jobs on the same inputs write, bit for bit, every table the old one-task jobs wrote (in-city TP,
TR, SIM; few-shot TP, SIM).

A task's ``input_kind`` (:data:`trajzoo.registry.TASK_KINDS`) picks its evaluator in
:data:`EVALUATORS`; every evaluator has the signature ``(loaded, task, fraction, finetune, ctx)``
and takes from ``loaded`` (:class:`LoadedRun`: city, plugin, model, device, location features)
what its kind needs:

- ``road``: fine-tunes the road-sequence encoder with a linear head
  (:func:`trajzoo.training.loop.finetune_and_evaluate`);
- ``point``: fine-tunes the point model on its recovery heads
  (:func:`trajzoo.training.point_tasks.finetune_point_task`);
- ``location``: a trained head on the model's frozen per-location features (``loaded.features``,
  rule ``location_features``; computed from the TRAIN view when absent);
- ``segment``: the model's frozen road-segment representations scored by the task's probe;
- ``embedding``: most-similar search on embeddings from ``loaded.plugin.embed_rows`` (no
  fine-tuning).

The experiment's fraction of the target's data applies to all fine-tuned kinds: 1.0 uses the
whole train and validation splits, 0.0 (zero-shot) none of them (no fine-tuning), F (few-shot) a
nested, seeded fraction F of the train split AND of the validation split that early-stops it.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from torch import nn

from trajzoo.splits import few_shot_subset


@dataclass
class EvaluationResult:
    """One task's outcome.

    Attributes:
        metrics: metric name -> value on the test split.
        n_train: fine-tuning trips used (after the few-shot fraction).
        n_test: test trips scored.
        qc: the task's eligibility accounting (stage ``task:<name>``, per split for point tasks).
        history: per-epoch rows (phase, epoch, train_loss, val_loss).
        predictions: per-trip test predictions with the trip id (road tasks: trip_id, y_true,
            y_pred (+ score for classification); point tasks: one row per recovered value; SIM:
            one row per query with its rank), or None.
        finetuned: road tasks: :func:`trajzoo.training.loop.finetune_and_evaluate`'s dict (the
            fine-tuned model and label standardisation, for :func:`trajzoo.bundle.save_head`).
    """

    metrics: dict[str, float]
    n_train: int
    n_test: int
    qc: pd.DataFrame
    history: list[dict]
    predictions: pd.DataFrame | None = None
    finetuned: dict | None = None


@dataclass
class LoadedRun:
    """What the ``evaluate`` rule loads once per run and hands to every task's evaluator.

    Attributes:
        city: :class:`trajzoo.data.prepared.PreparedCity` with the views the model reads.
        plugin: the model's plugin (:func:`trajzoo.registry.get_model`); ``embedding`` tasks
            embed with ``plugin.embed_rows``.
        model: the pretrained (or untrained) model from ``plugin.load``. :func:`evaluate_run`
            gives each task a deep copy, so this one is never fine-tuned.
        device: torch device the model is on.
        features: ``location`` tasks: the model's frozen per-location features (the rule
            ``location_features`` output: name -> tensor, as
            :meth:`trajzoo.registry.LocationModel.location_features` returns them), else None.
    """

    city: object
    plugin: object
    model: nn.Module
    device: object
    features: dict | None = None


def _fraction_ids(ids: list[str], fraction: float, seed: int) -> set[str]:
    if fraction >= 1:
        return set(ids)
    if fraction <= 0:
        return set()
    return set(few_shot_subset(ids, fraction, seed))


def evaluate_task(loaded: LoadedRun, task, fraction: float, finetune: dict, ctx) -> EvaluationResult:
    """Fine-tune ``loaded.model`` on ``task`` with ``fraction`` of the target's train/val data and
    score the test split, with the evaluator of the task's kind (:data:`EVALUATORS`).

    Args:
        loaded: :class:`LoadedRun` (its ``model`` is trained in place: pass a copy to keep one).
        task: a task instance; its ``input_kind`` is a key of :data:`EVALUATORS`.
        fraction: 1.0, 0.0 (zero-shot: no fine-tuning; point and embedding tasks only) or F in
            (0, 1).
        finetune: the model's ``finetune`` config section.
        ctx: :class:`trajzoo.training.loop.RunContext` (device, seed, checkpoints, history).

    Returns:
        :class:`EvaluationResult`.

    Raises:
        ValueError: an unknown task kind, zero-shot on a road or location task (a head that
            never saw a label scores nothing), an embedding task without the model's plugin, or
            an empty split.
    """
    evaluator = EVALUATORS.get(task.input_kind)
    if evaluator is None:
        raise ValueError(f"task {task.name}: unknown input_kind {task.input_kind!r} "
                         f"(evaluators: {sorted(EVALUATORS)})")
    return evaluator(loaded, task, fraction, finetune, ctx)


def _evaluate_road_task(loaded: LoadedRun, task, fraction, finetune, ctx) -> EvaluationResult:
    """A ``road`` task: the road-sequence encoder fine-tuned with a linear head on the task's
    labelled trips (the model's eligible trips only, capped by ``finetune.max_*_trips``)."""
    from trajzoo.training.loop import FineTuneConfig, finetune_and_evaluate

    model, city = loaded.model, loaded.city
    if fraction <= 0:
        raise ValueError(f"task {task.name}: zero-shot needs a task the pretrained model answers without "
                         "fine-tuning; road tasks put a trained head on the encoder")
    road = city.require("road")
    data = task.prepare_prepared(city) if hasattr(task, "prepare_prepared") else task.prepare(road)
    eligible = getattr(model, "eligible_trip_ids", None)
    if eligible is not None:  # the model encodes only some trips (e.g. SMARTraj2's view filters)
        keep_ids = eligible(city.name)
        n_in = sum(len(r) for r in data.rows.values())
        for split in ("train", "val", "test"):
            sel = np.array([str(r["trip_id"]) in keep_ids for r in data.rows[split]], dtype=bool)
            data.rows[split] = [r for r, k in zip(data.rows[split], sel) if k]
            data.labels[split] = data.labels[split][sel]
        n_kept = sum(len(r) for r in data.rows.values())
        from trajzoo.qc import stage_counts
        data.qc = pd.concat([data.qc, stage_counts(f"model_views:{task.name}", n_in, n_kept,
                                                   pd.Series(["model_views"] * (n_in - n_kept)))], ignore_index=True)
    ft = FineTuneConfig.from_dict(finetune)
    for split, cap in (("train", ft.max_train_trips), ("val", ft.max_val_trips)):
        if cap is not None and len(data.rows[split]) > cap:
            keep = _fraction_ids([str(r["trip_id"]) for r in data.rows[split]], cap / len(data.rows[split]), ctx.seed)
            sel = np.array([str(r["trip_id"]) in keep for r in data.rows[split]], dtype=bool)
            data.rows[split] = [r for r, k in zip(data.rows[split], sel) if k]
            data.labels[split] = data.labels[split][sel]
            ctx.logger.info("%s: a seeded subset of %d %s trips (finetune.max_%s_trips)", task.name,
                            len(data.rows[split]), split, split)
    if fraction < 1:
        for split in ("train", "val"):
            keep = _fraction_ids([str(r["trip_id"]) for r in data.rows[split]], fraction, ctx.seed)
            sel = np.array([str(r["trip_id"]) in keep for r in data.rows[split]], dtype=bool)
            data.rows[split] = [r for r, k in zip(data.rows[split], sel) if k]
            data.labels[split] = data.labels[split][sel]
    result = finetune_and_evaluate(model, road.graph, task, data, FineTuneConfig.from_dict(finetune), ctx)
    result["class_names"] = list(data.class_names)
    y_true, out = data.labels["test"], result["test_outputs"]
    pred = pd.DataFrame({"trip_id": result["test_trip_ids"]})
    if task.kind == "regression":
        pred["y_true"], pred["y_pred"] = np.asarray(y_true, dtype=np.float64), np.asarray(out, dtype=np.float64).reshape(-1)
    else:
        import torch
        prob = torch.softmax(torch.as_tensor(out, dtype=torch.float64), dim=-1).numpy()
        best = prob.argmax(axis=1)
        label = (lambda i: data.class_names[int(i)]) if data.class_names else (lambda i: int(i))
        pred["y_true"] = [label(i) for i in y_true]
        pred["y_pred"] = [label(i) for i in best]
        pred["score"] = prob[np.arange(len(best)), best]
    return EvaluationResult(result["metrics"], result["n_train"], result["n_test"], data.qc, list(ctx.history),
                            pred, result)


def _evaluate_embedding_task(loaded: LoadedRun, task, fraction, finetune, ctx) -> EvaluationResult:
    """Most-similar search (:class:`trajzoo.tasks.similarity.MostSimilarSearch`) on the test split
    of the view the model reads, with the model as it is (no fine-tuning: ``fraction`` and
    ``finetune`` are not used); rows embedded by ``loaded.plugin.embed_rows``."""
    from trajzoo.tasks.similarity import search_ranks, search_metrics, successors_of

    model, plugin, city = loaded.model, loaded.plugin, loaded.city
    if plugin is None:
        raise ValueError(f"task {task.name}: scoring embeddings needs the model's plugin")
    if "roads" in plugin.inputs:
        from trajzoo.data.city import trip_rows
        road = city.require("road")
        graph = road.graph
        search = task.road_search_set(trip_rows(road.split("test")), successors_of(graph), ctx.seed)
    else:
        graph = None
        search = task.point_search_set(city.require("points")["test"], ctx.seed)
    q = plugin.embed_rows(model, search.queries, ctx.device, graph=graph, city=city.name)
    db = plugin.embed_rows(model, search.database, ctx.device, graph=graph, city=city.name)
    ranks = search_ranks(q, db, search.truth)
    ctx.logger.info("%s: %d queries, database of %d test trips; %s", task.name, len(search.queries),
                    len(search.database), search_metrics(ranks))
    pred = pd.DataFrame({"trip_id": search.query_trip_ids, "rank": ranks, "database_size": len(search.database)})
    return EvaluationResult(search_metrics(ranks), 0, len(search.queries), search.qc, [], pred)


def _evaluate_segment_task(loaded: LoadedRun, task, fraction, finetune, ctx) -> EvaluationResult:
    """A ``segment`` task: the model's frozen segment representations of the task's input graph
    (the label's columns removed), scored by the task's probe; NaN metrics (n_train 0) when the
    model has no segment representation (logged)."""
    from trajzoo.tasks.road_label import segment_embeddings

    model, city = loaded.model, loaded.city
    road = city.require("road")
    data = task.prepare(road.graph, road.trips)
    if fraction < 1:
        keep = set(few_shot_subset([str(s) for s in data.segments["train"]], fraction, ctx.seed))
        sel = np.array([str(s) in keep for s in data.segments["train"]], dtype=bool)
        data.segments["train"], data.labels["train"] = data.segments["train"][sel], data.labels["train"][sel]
    emb = segment_embeddings(model, task.input_graph(road.graph), ctx.device)
    if emb is None:
        ctx.logger.info("%s: the model has no road-segment representation; metrics NaN", task.name)
        return EvaluationResult({m: float("nan") for m in task.metric_names}, 0, len(data.segments["test"]),
                                data.qc, [])
    metrics = task.score(emb, data, ctx.seed)
    return EvaluationResult(metrics, len(data.segments["train"]), len(data.segments["test"]), data.qc, [])


def _evaluate_point_task(loaded: LoadedRun, task, fraction, finetune, ctx) -> EvaluationResult:
    """A ``point`` task: the point model fine-tuned on its recovery heads on the task's eligible
    trips (``fraction`` of train and val), scored on the eligible test trips."""
    from trajzoo.training.point_tasks import PointFineTuneConfig, evaluate_point_task, finetune_point_task

    model, city = loaded.model, loaded.city
    points = city.require("points")
    eligible, qcs = {}, []
    for split, rows in points.items():
        eligible[split], qc = task.eligible(rows)
        qcs.append(qc.assign(split=split))
    max_len = 10**6 if task.whole_trip else model.config.max_len
    cfg = PointFineTuneConfig.from_dict({**finetune, "max_len": max_len})
    train, val = eligible["train"], eligible["val"]
    keep_train = _fraction_ids([r["trip_id"] for r in train], fraction, ctx.seed)
    keep_val = _fraction_ids([r["trip_id"] for r in val], fraction, ctx.seed)
    train = [r for r in train if r["trip_id"] in keep_train]
    val = [r for r in val if r["trip_id"] in keep_val]
    ctx.logger.info("%s: fine-tuning on %d of %d eligible train trips and %d of %d val trips (fraction %g), "
                    "%d test", task.name, len(train), len(eligible["train"]), len(val), len(eligible["val"]),
                    fraction, len(eligible["test"]))
    history = finetune_point_task(model, task, train, val, cfg, ctx, city.name) if train else []
    frames: list[pd.DataFrame] = []
    result = evaluate_point_task(model, task, eligible["test"], cfg.batch_size, ctx.device, city.name, max_len,
                                 predictions=frames)
    metrics = {m: result[m] for m in task.metric_names}
    return EvaluationResult(metrics, len(train), len(eligible["test"]), pd.concat(qcs, ignore_index=True),
                            list(history), pd.concat(frames, ignore_index=True) if frames else None)


def _evaluate_location_task(loaded: LoadedRun, task, fraction, finetune, ctx) -> EvaluationResult:
    """Labels from the TEST trips only; features from :func:`trajzoo.locations.train_view`
    (TRAIN trips only); a trained head on the frozen features (see
    :mod:`trajzoo.training.location_tasks`). ``fraction`` < 1 keeps that share of the labelled
    train and val LOCATIONS."""
    from trajzoo.locations import train_view
    from trajzoo.training.location_tasks import LocationFineTuneConfig, finetune_location_task

    model, city, features = loaded.model, loaded.city, loaded.features
    if fraction <= 0:
        raise ValueError(f"task {task.name}: zero-shot needs a task answered without a trained head")
    test_rows = [{**r, "split": "test"} for r in city.require("points")["test"]]
    data = task.prepare(city.require("locations"), test_rows)
    if fraction < 1:
        for split in ("train", "val"):
            ids = [str(i) for i in data.index[split]]
            keep = _fraction_ids(ids, fraction, ctx.seed)
            sel = np.array([i in keep for i in ids], dtype=bool)
            data.index[split], data.labels[split] = data.index[split][sel], data.labels[split][sel]
    if features is None:
        features = model.location_features(train_view(city), ctx.device)
    counts = {s: len(data.index[s]) for s in data.index}
    ctx.logger.info("%s: labelled locations per split %s (labels from %d test trips)", task.name, counts, len(test_rows))
    result = finetune_location_task(model, task, data, features, LocationFineTuneConfig.from_dict(finetune), ctx)
    return EvaluationResult(result["metrics"], result["n_train"], result["n_test"], data.qc, result["history"])


def load_city_and_model(job: dict, files: dict):
    """What the ``evaluate`` and ``embed`` rules start from: the target city's prepared views and
    the model of the job's pretraining, on the job's device.

    Args:
        job: the rule's ``params.job`` (model, city, timezone, inputs, device).
        files: the rule's inputs: ``model`` (the pretraining's ``model.pt``) and the city's
            prepared files (keys of :data:`trajzoo.data.prepared.INPUT_FILES`).

    Returns:
        ``(city, plugin, model, device)``.

    Raises:
        KeyError: the model is not installed, or a prepared file is missing.
    """
    from trajzoo.data.prepared import load_prepared
    from trajzoo.registry import get_model
    from trajzoo.training.loop import resolve_device

    city = load_prepared(job["city"], job["timezone"], job["inputs"], {k: v for k, v in files.items() if k != "model"})
    plugin = get_model(job["model"])
    device = resolve_device(job["device"])
    return city, plugin, plugin.load(files["model"], city, device), device


#: The evaluator of each task kind (``task.input_kind`` -> ``evaluator(loaded, task, fraction,
#: finetune, ctx) -> EvaluationResult``), what :func:`evaluate_task` dispatches on. A new kind of
#: task adds its evaluator here; it takes what it needs from the :class:`LoadedRun`.
EVALUATORS: dict[str, Callable[..., EvaluationResult]] = {
    "road": _evaluate_road_task,
    "point": _evaluate_point_task,
    "location": _evaluate_location_task,
    "segment": _evaluate_segment_task,
    "embedding": _evaluate_embedding_task,
}

#: The per-task outputs of the ``evaluate`` rule (keys of :attr:`TaskJob.outputs`).
TASK_OUTPUTS = ("metrics", "history", "qc", "predictions", "head")


@dataclass
class TaskJob:
    """One task of a run's ``evaluate`` job.

    Attributes:
        name: task name (an entry point of ``trajzoo.tasks``).
        options: the task's keyword arguments (config ``tasks.<name>``).
        outputs: :data:`TASK_OUTPUTS` -> path: ``<task>.csv`` (metrics), ``<task>_history.csv``,
            ``<task>_qc.csv``, ``<task>_predictions.parquet``, ``<task>_head.pt``.
        checkpoint_dir: the task's fine-tuning checkpoints (resumed after a kill).
        tensorboard_dir: the task's TensorBoard folder (used with ``training.tensorboard``).
        log: the task's own log file, or None (everything to the run's log).
    """

    name: str
    options: dict
    outputs: dict[str, str]
    checkpoint_dir: str
    tensorboard_dir: str | None = None
    log: str | None = None


def load_run(job: dict, files: dict):
    """Seed and load what every task of a run reads: ``seed_everything(job["seed"])``, the location
    features (``files["features"]``, when a location task is in the run), the city and the model
    (:func:`load_city_and_model`), then the RNG state that loading left.

    Args:
        job: the rule's ``params.job`` (model, city, timezone, inputs, device, seed).
        files: the rule's inputs (see :func:`load_city_and_model`; ``features`` optional).

    Returns:
        ``(loaded, rng)``: a :class:`LoadedRun` and the
        :class:`trajzoo.training.loop.RngState` each task starts from.

    Raises:
        KeyError: the model is not installed, or a prepared file is missing.
    """
    import torch

    from trajzoo.training.loop import capture_rng_state, seed_everything

    seed_everything(job["seed"])
    files = dict(files)
    features = torch.load(files.pop("features"), weights_only=True) if "features" in files else None
    city, plugin, model, device = load_city_and_model(job, files)
    return LoadedRun(city, plugin, model, device, features), capture_rng_state(job["seed"])


def write_task_outputs(result: EvaluationResult, task, job: dict, options: dict, outputs: dict[str, str],
                       pretrained_digest: str) -> None:
    """Write one task's tables (paths in ``outputs``, keys :data:`TASK_OUTPUTS`): metrics CSV
    (task, metric, value, n_train, n_test, seed), per-epoch history CSV, eligibility QC CSV,
    per-trip test predictions (Parquet; an empty ``trip_id`` column when there are none) and the
    fine-tuned head (:func:`trajzoo.bundle.save_head`; :func:`trajzoo.bundle.save_no_head` with the
    reason for tasks without a per-trip road head)."""
    from trajzoo.bundle import save_head, save_no_head

    result.qc.to_csv(outputs["qc"], index=False)
    pd.DataFrame([{"task": task.name, "metric": m, "value": v, "n_train": result.n_train, "n_test": result.n_test,
                   "seed": job["seed"]} for m, v in result.metrics.items()]).to_csv(outputs["metrics"], index=False)
    pd.DataFrame(result.history, columns=None if result.history else ["phase", "epoch", "train_loss", "val_loss"]
                 ).to_csv(outputs["history"], index=False)
    (result.predictions if result.predictions is not None else pd.DataFrame({"trip_id": pd.Series(dtype=str)})
     ).to_parquet(outputs["predictions"], index=False)
    if result.finetuned is not None:
        save_head(outputs["head"], task, result.finetuned, options, pretrained_digest)
    else:
        save_no_head(outputs["head"], task, "no per-trip road head: " + {
            "embedding": "scored on embeddings without fine-tuning", "point": "a point task's recovery heads"}.get(
            task.input_kind, f"a {task.input_kind} task"))


def evaluate_run(job: dict, files: dict, tasks: list[TaskJob], logger, log_to: Callable | None = None,
                 run_log: str | None = None) -> dict:
    """The ``evaluate`` job of one run: load once (:func:`load_run`), then for each task in the
    given order: restore the loaded RNG state, take a deep copy of the loaded model, build the
    task, fine-tune and score it (:func:`evaluate_task`, under the run options of
    ``job["training_options"]``) and write its tables (:func:`write_task_outputs`). Each task thus
    starts from exactly the model and RNG state a job of that task alone started from, and writes
    the tables that job writes (see the module docstring for the tests).

    Args:
        job: the rule's ``params.job``: model, setting, fraction, city, timezone, finetune, seed,
            device, inputs, training_options.
        files: the rule's inputs (:func:`load_run`).
        tasks: :class:`TaskJob` per task, in the order to run them.
        logger: the run's logger (the rule's ``finetune.log``): load time, and per task its start
            and ``<task>: fine-tuned and scored in S s`` (what benchmarks/benchmark_finetune_startup.py
            reads).
        log_to: ``log_to(path) -> logger`` sends logging and stdout/stderr to ``path``
            (:func:`trajzoo.runlog.setup_rule_logging`); called with a task's ``log`` before it
            and with ``run_log`` after it. None: everything goes to ``logger``.
        run_log: the run's log file (``logger``'s), to switch back to after a task's own log.

    Returns:
        task name -> :class:`EvaluationResult`.

    Raises:
        What :func:`load_run`, :func:`evaluate_task` and the task constructors raise.
    """
    from trajzoo.registry import get_task
    from trajzoo.training.launch import is_writer
    from trajzoo.training.loop import RunContext, restore_rng_state, tensor_digest
    from trajzoo.training.options import options_from_config, run_options

    t0 = time.perf_counter()
    loaded, rng = load_run(job, files)
    pretrained_digest = tensor_digest(loaded.model.state_dict())
    logger.info("loaded %s and model %s (%s, %s) in %.2f s; tasks in order: %s", job["city"], job["model"],
                job.get("variant"), job["setting"], time.perf_counter() - t0, [t.name for t in tasks])
    results = {}
    for spec in tasks:
        logger.info("%s: fine-tuning (log %s)", spec.name, spec.log)
        start = time.perf_counter()
        switch = log_to is not None and spec.log is not None and run_log is not None
        task_log = log_to(spec.log) if switch else logger
        restore_rng_state(rng)
        task_loaded = dataclasses.replace(loaded, model=copy.deepcopy(loaded.model))
        task = get_task(spec.name, **spec.options)
        ctx = RunContext(loaded.device, job["seed"], spec.checkpoint_dir, task_log)
        with run_options(options_from_config(job.get("training_options"), loaded.device, spec.tensorboard_dir)):
            result = evaluate_task(task_loaded, task, job["fraction"], job["finetune"], ctx)
        task_log.info("%s %s %s: %s", job["model"], job["setting"], task.name, result.metrics)
        if switch:
            logger = log_to(run_log)
        logger.info("%s: fine-tuned and scored in %.2f s", spec.name, time.perf_counter() - start)
        if is_writer():  # data parallelism: rank 0 alone writes (trajzoo.training.launch)
            write_task_outputs(result, task, job, spec.options, spec.outputs, pretrained_digest)
        results[spec.name] = result
        del task_loaded
    return results
