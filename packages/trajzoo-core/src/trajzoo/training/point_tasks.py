"""Fine-tuning and evaluation loop of point-level tasks (TP, TR, OD-TTE) for raw-GPS models.

Model-agnostic: the loop only uses the :class:`~trajzoo.tasks.point_base.PointTask` contract
(``make_query``, ``select``, ``loss``, ``metrics``) and the model contract
``model.predict(query.visible()) -> {"xy": (B, L, 2) metres, "t_minutes": (B, L) minutes}``, plus
``model.auxiliary_loss()`` when the model has one (e.g. TransferTraj's SC-MoE load balancing),
added to the training loss. Source of the scheme: TransferTraj (arXiv 2505.12672), section
"Unified Task-Transferable Input-Output Scheme": a task is fine-tuned with the same
masked-modality recovery as pretraining, the task's query deciding what is hidden.

Fine-tuning (:func:`finetune_point_task`) updates every parameter with AdamW on the task loss
(MSE of the recovered modality, x, y in km, time in minutes), early-stops on the validation task
loss (patience in epochs) and leaves the model with the weights of its best validation epoch.
It trains through the one engine (:func:`trajzoo.training.engine.train`): a checkpoint (model,
optimiser, generator and global RNG states, best state, history) is written atomically after
every epoch (:class:`~trajzoo.training.checkpoints.CheckpointStore`, latest only); a killed run
started again with the same definition resumes from it.

Data parallelism (K processes, :mod:`trajzoo.training.distributed`): each process takes its share
of every global batch (``iterate_point_batches(..., shard=True)``) and computes its share of the
global batch's loss: the task MSE of its hidden values times their fraction of the global batch's
hidden values, plus ``model.auxiliary_loss()``, which must then be the model's share of the
global batch's auxiliary term (TransferTraj's load balancing all-reduces its routing counts);
the gradients are summed (``StepLoss.global_share``), so K processes train as one.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import torch
from torch import nn

from trajzoo.data.points import iterate_point_batches
from trajzoo.runlog import config_digest
from trajzoo.training.checkpoints import CheckpointStore
from trajzoo.training.configs import PointFineTuneConfig  # noqa: F401 (re-exported: torch-free module)
from trajzoo.training.distributed import batch_view, sum_over_processes
from trajzoo.training.engine import StepLoss, TrainSchedule, train
from trajzoo.training.loop import RunContext, progress, tensor_digest


def _aux(model: nn.Module) -> torch.Tensor | None:
    fn = getattr(model, "auxiliary_loss", None)
    return fn() if callable(fn) else None


def task_loss(model: nn.Module, task, rows: list[dict], batch_size: int, device, city: str, max_len: int) -> float:
    """Trip-weighted mean of ``task.loss`` over ``rows`` in eval mode (no auxiliary term);
    NaN when ``rows`` is empty."""
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in iterate_point_batches(rows, batch_size, city, max_len):
            query = task.make_query(batch).to(device)
            total += float(task.loss(query, model.predict(query.visible()))) * batch.batch_size
            n += batch.batch_size
    return total / n if n else float("nan")


def finetune_point_task(model: nn.Module, task, train_rows: list[dict], val_rows: list[dict],
                        cfg: PointFineTuneConfig, ctx: RunContext, city: str) -> list[dict]:
    """Fine-tune ``model`` in place on a point task; keep the best validation epoch.

    Args:
        model: an ``nn.Module`` with ``predict`` (see the module docstring), on ``ctx.device``.
        task: a :class:`~trajzoo.tasks.point_base.PointTask`.
        train_rows, val_rows: ELIGIBLE point rows (filter with ``task.eligible`` first).
            Empty ``val_rows``: no early stopping, the last epoch is kept.
        cfg: hyper-parameters. ctx: device, seed, checkpoint folder, logger, history.
        city: city key of the rows.

    Returns:
        This run's history entries ``{"phase": "finetune:<task>", "epoch", "train_loss",
        "val_loss", "best_epoch"}`` (also appended to ``ctx.history``); empty when
        ``cfg.epochs == 0``.

    Raises:
        ValueError: ``cfg.epochs > 0`` and no train rows.
    """
    phase = f"finetune:{task.name}"
    if cfg.epochs == 0:
        ctx.logger.info("%s: 0 epochs, no fine-tuning", phase)
        return []
    if not train_rows:
        raise ValueError(f"task {task.name} on {city}: no train trajectory to fine-tune on")
    device = ctx.device
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    fingerprint = config_digest({
        "task": task.name, "city": city, "config": asdict(cfg), "seed": ctx.seed,
        "sizes": [len(train_rows), len(val_rows)],
        "first_trips": [str(r["trip_id"]) for r in train_rows[:3]] + [str(r["trip_id"]) for r in val_rows[:3]],
        "model": tensor_digest(model.state_dict())})
    store = CheckpointStore(ctx.checkpoint_dir, fingerprint, keep_last_only=True)
    gen = ctx.generator(offset=1)

    def step_loss(model, batch):
        query = task.make_query(batch).to(device)
        loss = task.loss(query, model.predict(query.visible()))
        aux = _aux(model) if cfg.use_auxiliary_loss else None
        view = batch_view()
        if view is not None:  # data parallelism: this process's share of the global batch's loss
            n_local = int(task._mask(query).sum())
            n_global = sum_over_processes(float(n_local))
            loss = loss * (n_local / max(n_global, 1.0))
        objective = loss + aux if aux is not None else loss
        return StepLoss(objective, weight=batch.batch_size if view is None else view[0], value=float(loss.detach()),
                        global_share=view is not None)

    fit = train(model, opt, step_loss,
                lambda: iterate_point_batches(train_rows, cfg.batch_size, city, cfg.max_len, shuffle=True,
                                              generator=gen, shard=True),
                TrainSchedule(epochs=cfg.epochs, grad_clip=cfg.grad_clip, patience=cfg.patience if val_rows else None,
                              warmup_steps=cfg.warmup_steps, cosine=cfg.cosine),
                steps_per_epoch=-(-len(train_rows) // cfg.batch_size), params=params, phase=phase,
                history=ctx.history, generator=gen, store=store,
                checkpoint_phase=f"finetune_{task.name}",
                val_loss=lambda m: task_loss(m, task, val_rows, cfg.batch_size, device, city, cfg.max_len),
                device=device, logger=ctx.logger, extra_fields=lambda r: {"best_epoch": r.best_epoch})
    return fit.rows


def evaluate_point_task(model: nn.Module, task, rows: list[dict], batch_size: int, device, city: str,
                        max_len: int = 128, predictions: list | None = None) -> dict:
    """Score ``model`` on a point task.

    Args:
        model: with ``predict``. task: a PointTask. rows: ELIGIBLE point rows (test split).
        batch_size: trajectories per forward. device: torch device. city: city key.
        max_len: points kept per trajectory by the collate.
        predictions: when a list, receives one DataFrame per batch with one row per predicted
            value: trip_id, point (index along the trip), y_true, y_pred (x and y in metres
            relative to the first point as ``_x``/``_y`` columns for xy tasks; minutes for time).

    Returns:
        ``{**task.metrics(y_true, y_pred), "n": trajectories, "n_predictions": predicted values}``;
        metrics pooled over every hidden position (e.g. every predicted point for TP).

    Raises:
        ValueError: no rows.
    """
    if not rows:
        raise ValueError(f"task {task.name} on {city}: no trajectory to evaluate")
    model.eval()
    model.to(device)
    truths, preds = [], []
    with torch.no_grad():
        for batch in progress(iterate_point_batches(rows, batch_size, city, max_len), f"evaluate {task.name}",
                              total=-(-len(rows) // batch_size)):
            query = task.make_query(batch).to(device)
            y_true, y_pred = task.select(query, model.predict(query.visible()))
            truths.append(y_true.detach().double().cpu())
            preds.append(y_pred.detach().double().cpu())
            if predictions is not None:
                mask = task._mask(query).cpu()
                trip_idx, point_idx = mask.nonzero(as_tuple=True)  # row-major, as task.select
                frame = {"trip_id": [str(query.trip_ids[i]) for i in trip_idx.tolist()],
                         "point": point_idx.numpy()}
                yt, yp = truths[-1].numpy(), preds[-1].numpy()
                names = ("_x", "_y") if yt.shape[1] == 2 else ("",)
                for j, suffix in enumerate(names):
                    frame[f"y_true{suffix}"] = yt[:, j]
                    frame[f"y_pred{suffix}"] = yp[:, j]
                predictions.append(pd.DataFrame(frame))
    y_true = torch.cat(truths).numpy()
    y_pred = torch.cat(preds).numpy()
    out = dict(task.metrics(y_true, y_pred))
    out.update(n=len(rows), n_predictions=int(np.asarray(y_true).shape[0]))
    return out
