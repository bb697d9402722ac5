"""Fine-tuning of location-level tasks: a trained head on FROZEN per-location features.

Protocol (TrajGANR section 3.4 and the baselines' protocol "frozen encoders with a trained
head"): the model computes features of every task location once
(:meth:`trajzoo.registry.LocationModel.location_features`, from TRAIN trips only), and a fresh
head (:meth:`~trajzoo.registry.LocationModel.location_head`) is trained on the labelled
locations of the ``train`` location split through the one training engine
(:func:`trajzoo.training.engine.train`: AdamW, early stopping on the ``val`` locations,
per-epoch checkpoints), then scored on the ``test`` locations with the task's metrics.
Regression targets are standardised with the train locations' mean and standard deviation for
training and mapped back before scoring.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from trajzoo.training.checkpoints import CheckpointStore
from trajzoo.training.configs import LocationFineTuneConfig  # noqa: F401 (re-exported: torch-free module)
from trajzoo.training.engine import TrainSchedule, train


def select(features: dict[str, Tensor], index: np.ndarray) -> dict[str, Tensor]:
    """Rows ``index`` of every per-location feature tensor (first axis)."""
    idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
    return {k: v.index_select(0, idx) for k, v in features.items()}


def _batches(features, target, batch_size, generator):
    n = len(target)
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        i = order[start:start + batch_size]
        yield {k: v.index_select(0, i) for k, v in features.items()}, target.index_select(0, i)


def _outputs(head, features, batch_size, device) -> np.ndarray:
    head.eval()
    n = len(next(iter(features.values())))
    out = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            out.append(head({k: v[start:start + batch_size].to(device) for k, v in features.items()}).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 1), dtype=np.float32)


def finetune_location_task(model, task, data, features: dict[str, Tensor], cfg: LocationFineTuneConfig, ctx) -> dict:
    """Train a fresh head of ``model`` on the train locations of ``data`` and score the test ones.

    Args:
        model: a :class:`trajzoo.registry.LocationModel`.
        task: a :class:`trajzoo.tasks.location.LocationTask`.
        data: its :class:`~trajzoo.tasks.location.LocationTaskData`.
        features: the model's frozen features of every location (first axis = location row).
        cfg: head schedule. ctx: :class:`trajzoo.training.loop.RunContext`.

    Returns:
        ``{"metrics", "n_train", "n_test", "history"}``.

    Raises:
        ValueError: no labelled train or test location.
    """
    for s in ("train", "test"):
        if len(data.index[s]) == 0:
            raise ValueError(f"task {task.name}: no labelled {s} location (see its qc table)")
    device = ctx.device
    feats = {s: select(features, data.index[s]) for s in ("train", "val", "test")}
    mean, std = 0.0, 1.0
    if task.kind == "regression":
        mean = float(np.mean(data.labels["train"]))
        std = float(np.std(data.labels["train"])) or 1.0
    targets = {s: torch.as_tensor((data.labels[s] - mean) / std if task.kind == "regression" else data.labels[s])
               for s in ("train", "val", "test")}
    targets = {s: t.float() if t.dtype.is_floating_point else t.long() for s, t in targets.items()}
    head = model.location_head(features, data.n_outputs).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = ctx.generator(offset=11)

    def step_loss(h, batch):
        x, y = batch
        return task.loss(h({k: v.to(device) for k, v in x.items()}), y.to(device))

    def val_loss(h):
        if len(targets["val"]) == 0:
            return float("nan")
        out = torch.as_tensor(_outputs(h, feats["val"], cfg.batch_size, device))
        with torch.no_grad():
            return float(task.loss(out, targets["val"]))

    history: list[dict] = []
    has_val = len(targets["val"]) > 0
    store = CheckpointStore(ctx.checkpoint_dir, f"{task.name}-{len(targets['train'])}-{ctx.seed}")
    train(head, opt, step_loss, lambda: _batches(feats["train"], targets["train"], cfg.batch_size, gen),
          TrainSchedule(epochs=cfg.epochs, patience=cfg.patience if has_val else None), phase=f"finetune:{task.name}",
          history=history, generator=gen, store=store, val_loss=val_loss if has_val else None, device=device,
          logger=ctx.logger)
    out = _outputs(head, feats["test"], cfg.batch_size, device)
    pred = task.predictions(out)
    if task.kind == "regression":
        pred = pred * std + mean
    metrics = task.metrics(data.labels["test"], pred)
    ctx.history.extend(history)
    return {"metrics": metrics, "n_train": int(len(targets["train"])), "n_test": int(len(targets["test"])),
            "history": history}


class ConcatMLPHead(nn.Module):
    """The default location head: concatenation of the given per-location ``(b, d_i)`` features
    followed by a two-layer MLP (TrajGANR eq. 10's head ``Linear -> ReLU -> Linear``).

    Args:
        dims: feature name -> d_i. hidden: hidden width. n_outputs: outputs.
    """

    def __init__(self, dims: dict[str, int], hidden: int, n_outputs: int):
        super().__init__()
        from trajzoo.nn.mlp import MLP

        self.keys = sorted(dims)
        self.mlp = MLP(sum(dims[k] for k in self.keys), hidden, n_outputs)

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        """``(b, n_outputs)`` from ``{name: (b, d_name)}``."""
        return self.mlp(torch.cat([features[k].float() for k in self.keys], dim=-1))
