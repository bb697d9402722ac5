"""Downstream evaluation of any model on any task it serves: the body of the ``evaluate`` rule.

A task's ``input_kind`` (:data:`trajzoo.registry.TASK_KINDS`) picks the core fine-tuning loop:
``road`` tasks fine-tune the road-sequence encoder with a linear head
(:func:`trajzoo.training.loop.finetune_and_evaluate`); ``point`` tasks fine-tune the point model
on its recovery heads (:func:`trajzoo.training.point_tasks.finetune_point_task`). The experiment's
fraction of the target's data applies to both: 1.0 uses the whole train and validation splits,
0.0 (zero-shot) none of them (no fine-tuning), F (few-shot) a nested, seeded fraction F of the
train split AND of the validation split that early-stops it.
"""
from __future__ import annotations

from dataclasses import dataclass

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


def _fraction_ids(ids: list[str], fraction: float, seed: int) -> set[str]:
    if fraction >= 1:
        return set(ids)
    if fraction <= 0:
        return set()
    return set(few_shot_subset(ids, fraction, seed))


def evaluate_task(model: nn.Module, task, city, fraction: float, finetune: dict, ctx,
                  features: dict | None = None, plugin=None) -> EvaluationResult:
    """Fine-tune ``model`` on ``task`` with ``fraction`` of the target's train/val data, score test.

    Args:
        model: the pretrained (or untrained) model, from the plugin's ``load``.
        task: a task instance (``input_kind`` ``road`` or ``point``).
        city: :class:`trajzoo.data.prepared.PreparedCity` with the view the task reads.
        fraction: 1.0, 0.0 (zero-shot: no fine-tuning; point tasks only) or F in (0, 1).
        finetune: the model's ``finetune`` config section.
        ctx: :class:`trajzoo.training.loop.RunContext` (device, seed, checkpoints, history).
        features: ``location`` tasks only: the model's frozen per-location features (rule
            ``location_features``); None = computed here from the TRAIN view.
        plugin: the model's plugin; needed by ``embedding`` tasks (most-similar search), which
            embed their own query and database rows with ``plugin.embed_rows`` and never fine-tune
            (any fraction, zero-shot included).

    Returns:
        :class:`EvaluationResult`.

    Raises:
        ValueError: an unknown task kind, zero-shot on a road task (a linear head that never
            saw a label scores nothing), or an empty split.
    """
    if task.input_kind == "road":
        return _evaluate_road_task(model, task, city, fraction, finetune, ctx)
    if task.input_kind == "point":
        return _evaluate_point_task(model, task, city, fraction, finetune, ctx)
    if task.input_kind == "location":
        return _evaluate_location_task(model, task, city, fraction, finetune, ctx, features)
    if task.input_kind == "segment":
        return _evaluate_segment_task(model, task, city, fraction, ctx)
    if task.input_kind == "embedding":
        if plugin is None:
            raise ValueError(f"task {task.name}: scoring embeddings needs the model's plugin")
        return _evaluate_embedding_task(model, plugin, task, city, ctx)
    raise ValueError(f"task {task.name}: unknown input_kind {task.input_kind!r}")


def _evaluate_road_task(model, task, city, fraction, finetune, ctx) -> EvaluationResult:
    from trajzoo.training.loop import FineTuneConfig, finetune_and_evaluate

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


def _evaluate_embedding_task(model, plugin, task, city, ctx) -> EvaluationResult:
    """Most-similar search (:class:`trajzoo.tasks.similarity.MostSimilarSearch`) on the test split
    of the view the model reads, with the model as it is (no fine-tuning)."""
    from trajzoo.tasks.similarity import search_ranks, search_metrics, successors_of

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


def _evaluate_segment_task(model, task, city, fraction, ctx) -> EvaluationResult:
    """A ``segment`` task: the model's frozen segment representations of the task's input graph
    (the label's columns removed), scored by the task's probe; NaN metrics (n_train 0) when the
    model has no segment representation (logged)."""
    from trajzoo.tasks.road_label import segment_embeddings

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


def _evaluate_point_task(model, task, city, fraction, finetune, ctx) -> EvaluationResult:
    from trajzoo.training.point_tasks import PointFineTuneConfig, evaluate_point_task, finetune_point_task

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


def _evaluate_location_task(model, task, city, fraction, finetune, ctx, features) -> EvaluationResult:
    """Labels from the TEST trips only; features from :func:`trajzoo.locations.train_view`
    (TRAIN trips only); a trained head on the frozen features (see
    :mod:`trajzoo.training.location_tasks`). ``fraction`` < 1 keeps that share of the labelled
    train and val LOCATIONS."""
    from trajzoo.locations import train_view
    from trajzoo.training.location_tasks import LocationFineTuneConfig, finetune_location_task

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
