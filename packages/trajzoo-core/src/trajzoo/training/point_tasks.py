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
loss (patience in epochs) and leaves the model with the weights of its best validation epoch. A
checkpoint (model, optimiser, generator and global RNG states, best state, history) is written
atomically after every epoch (:class:`~trajzoo.training.checkpoints.CheckpointStore`, latest
only); a killed run started again with the same definition resumes from it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from trajzoo.config import strict_from_dict
from trajzoo.data.points import iterate_point_batches
from trajzoo.runlog import config_digest
from trajzoo.training.checkpoints import CheckpointStore
from trajzoo.training.loop import RunContext, progress, tensor_digest


@dataclass(frozen=True)
class PointFineTuneConfig:
    """Fine-tuning hyper-parameters of a point task.

    Attributes:
        epochs: passes over the train rows (0 = no fine-tuning, e.g. zero-shot).
        lr: AdamW learning rate. weight_decay: AdamW weight decay.
        batch_size: trajectories per step.
        patience: stop after this many epochs without a lower validation loss.
        max_len: points kept per trajectory by the collate (its first ``max_len``).
        grad_clip: max global gradient norm (0 = none).
        use_auxiliary_loss: add ``model.auxiliary_loss()`` (if the model has it) to the train loss.
    """

    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 64
    patience: int = 2
    weight_decay: float = 0.0
    max_len: int = 128
    grad_clip: float = 1.0
    use_auxiliary_loss: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.patience < 1 or self.max_len < 1 or self.lr <= 0:
            raise ValueError(f"invalid point fine-tuning config {asdict(self)}: need epochs >= 0, batch_size, "
                             "patience, max_len >= 1 and lr > 0")

    @classmethod
    def from_dict(cls, d: dict | None) -> "PointFineTuneConfig":
        """Build from config; unknown keys raise ValueError naming them."""
        return strict_from_dict(cls, d, "point fine-tuning parameter")


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
    store_phase = f"finetune_{task.name}"
    gen = ctx.generator(offset=1)
    best_val, best_epoch, best_state, bad_epochs, first, stopped = float("inf"), -1, None, 0, 0, False
    resume = store.latest(store_phase, device)
    if resume is not None:
        first = store.resume_training(resume, model, opt, gen, ctx.history)
        best_val, best_epoch, best_state = resume["best_val"], resume["best_epoch"], resume["best_state"]
        bad_epochs, stopped = resume["bad_epochs"], resume["stopped"]
        ctx.logger.info("%s: resuming after epoch %d", phase, resume["epoch"])
    for epoch in progress(range(first, cfg.epochs if not stopped else first), f"{phase} epochs"):
        model.train()
        total, count = 0.0, 0
        for batch in iterate_point_batches(train_rows, cfg.batch_size, city, cfg.max_len, shuffle=True, generator=gen):
            query = task.make_query(batch).to(device)
            loss = task.loss(query, model.predict(query.visible()))
            aux = _aux(model) if cfg.use_auxiliary_loss else None
            objective = loss + aux if aux is not None else loss
            opt.zero_grad(set_to_none=True)
            objective.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            total += float(loss.detach()) * batch.batch_size
            count += batch.batch_size
        val_loss = task_loss(model, task, val_rows, cfg.batch_size, device, city, cfg.max_len)
        if not val_rows or val_loss < best_val:  # without validation rows the last epoch is kept
            best_val, best_epoch, bad_epochs = (val_loss if val_rows else float("inf")), epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        stopped = bad_epochs >= cfg.patience
        entry = {"phase": phase, "epoch": epoch, "train_loss": total / max(count, 1), "val_loss": val_loss,
                 "best_epoch": best_epoch}
        ctx.history.append(entry)
        ctx.logger.info("%s epoch %d: train loss %.4f, val loss %.4f (best epoch %d)", phase, epoch,
                        entry["train_loss"], val_loss, best_epoch)
        store.save(store_phase, epoch, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                        "generator": gen.get_state(), "best_val": best_val, "best_epoch": best_epoch,
                                        "best_state": best_state, "bad_epochs": bad_epochs, "stopped": stopped,
                                        "history": list(ctx.history)})
        if stopped:
            ctx.logger.info("%s: early stop after epoch %d", phase, epoch)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return [h for h in ctx.history if h.get("phase") == phase]


def evaluate_point_task(model: nn.Module, task, rows: list[dict], batch_size: int, device, city: str,
                        max_len: int = 128) -> dict:
    """Score ``model`` on a point task.

    Args:
        model: with ``predict``. task: a PointTask. rows: ELIGIBLE point rows (test split).
        batch_size: trajectories per forward. device: torch device. city: city key.
        max_len: points kept per trajectory by the collate.

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
    y_true = torch.cat(truths).numpy()
    y_pred = torch.cat(preds).numpy()
    out = dict(task.metrics(y_true, y_pred))
    out.update(n=len(rows), n_predictions=int(np.asarray(y_true).shape[0]))
    return out
