"""The single-city pretraining loop shared by the pretrained baselines (``transformer-mlm`` and
``start``).

Baselines pretrain on the TARGET city's train split only (source cities are ignored and the
log says so), through the one training engine (:func:`trajzoo.training.engine.train`; the model
part is ``model.loss(batch, graph, generator)``). One epoch = one shuffled pass over the train
split with AdamW (gradient-norm clipping at ``grad_clip``; train loss = mean over steps); after
every epoch the validation loss (masks and augmentations drawn from a fixed seed, so it is comparable across
epochs) is logged, a history row ``{"phase": "pretrain:<city>", "epoch", "train_loss",
"val_loss"}`` is appended to ``context.history``, and a checkpoint (model, optimiser, generator
state, history, plus the global RNG states) is written atomically through
:class:`trajzoo.training.checkpoints.CheckpointStore`. A killed run started again with the same
definition (model, hparams, schedule, seed, data sizes) resumes after its last completed epoch
and reaches the same weights as an uninterrupted run; checkpoints of another definition are
ignored.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from trajzoo.data.batch import RoadGraph, TrajectoryBatch
from trajzoo.data.city import CityData, iterate_batches, trip_rows
from trajzoo.runlog import config_digest
from trajzoo.training.checkpoints import CheckpointStore
from trajzoo.training.engine import StepLoss, TrainSchedule, train
from trajzoo.training.loop import RunContext, pretraining_loss

from .config import PretrainSchedule  # noqa: F401 (re-exported: torch-free module)

PHASE = "pretrain"
"""Checkpoint phase name: files ``pretrain-epoch-<k>.pt`` in ``context.checkpoint_dir``."""

VALIDATION_SEED_OFFSET = 7
"""The validation masks are drawn from ``torch.Generator().manual_seed(seed + 7)``."""


class Pretrainer(Protocol):
    """What the loop needs: an ``nn.Module`` with an ``encoder`` attribute (the module returned
    by the plugin) and a self-supervised loss."""

    encoder: nn.Module

    def loss(self, batch: TrajectoryBatch, graph: RoadGraph, generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        """``(scalar loss, float stats)`` of one batch; masks/augmentations from ``generator``.

        Under data parallelism ``batch`` is this process's share of a global batch; the loss is
        either the mean over the share's terms (``stats["n_masked"]`` terms, else one per trip:
        the processes' gradients are averaged with those weights) or, with
        ``stats["global_share"] = 1``, the share of the global batch's loss (summed)."""


def evaluate_loss(model, rows: list[dict], graph, batch_size: int, seed: int, device) -> float:
    """Mean pretraining loss over ``rows`` with masks from a fixed seed (comparable across epochs);
    see :func:`trajzoo.training.loop.pretraining_loss`."""
    return pretraining_loss(model, rows, graph, batch_size, seed, device)


def run_fingerprint(model_name: str, config: Any, schedule: PretrainSchedule, seed: int, target: CityData) -> str:
    """:func:`trajzoo.runlog.config_digest` of what defines a pretraining run: model name,
    hparams dataclass, schedule, seed, and the target city's name, N and split sizes."""
    return config_digest({
        "model": model_name, "hparams": asdict(config), "schedule": asdict(schedule), "seed": seed,
        "city": [target.name, target.graph.num_segments,
                 target.trips["split"].value_counts().sort_index().to_dict()]})


def pretrain_single_city(model: Any, model_name: str, config: Any, schedule: PretrainSchedule,
                         target: CityData, sources: list[CityData], ctx: RunContext) -> Any:
    """Pretrain ``model`` on the target city's train split with per-epoch checkpoints.

    ``model`` must be freshly built by the caller (from the seeded global torch RNG) before this
    is called: on resume its weights, the optimiser, the shuffle/mask generator, the history and
    the global RNG states are all replaced by the checkpoint's.

    Args:
        model: a :class:`Pretrainer` (encoder + pretraining heads).
        model_name: registry name, used in the fingerprint and log lines.
        config: the model's hparams dataclass (part of the fingerprint).
        schedule: epochs, batch size, lr, weight decay, gradient clipping.
        target: the city to pretrain on (train split; val split for the logged validation loss).
        sources: ignored (logged): baselines are single-city models.
        ctx: device, seed (generator ``ctx.generator(0)``), checkpoint folder, logger, history.

    Returns:
        ``model`` after ``schedule.epochs`` epochs, on ``ctx.device``, in eval mode.

    Raises:
        ValueError: the target's train split is empty.
    """
    if sources:
        ctx.logger.info("%s is a single-city baseline: ignoring source cities %s", model_name,
                        [s.name for s in sources])
    device = ctx.device
    train_rows = trip_rows(target.split("train"))
    val_rows = trip_rows(target.split("val"))
    if not train_rows:
        raise ValueError(f"target city {target.name}: empty train split")
    graph = target.graph.to(device)
    model.to(device)
    fit = getattr(model, "fit_to_trips", None)
    if callable(fit):  # train-split statistics of the model (e.g. START's mean travel times)
        fit(train_rows)
    store = CheckpointStore(ctx.checkpoint_dir, run_fingerprint(model_name, config, schedule, ctx.seed, target))
    gen = ctx.generator(offset=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
    ctx.logger.info("%s: pretraining on %s (%d train, %d val trips), %d epochs", model_name, target.name,
                    len(train_rows), len(val_rows), schedule.epochs)
    def step_loss(m, item):
        # data parallelism (trajzoo.training.distributed): item is this process's share of a global
        # batch; a masked-token loss averages its masked positions, so its share weighs n_masked;
        # a loss that is already the share of the global batch's loss (START's) is summed
        loss, stats = m.loss(item[1].to(device), graph, gen)
        return StepLoss(loss, grad_weight=float(stats.get("n_masked", len(item[0]))),
                        global_share=bool(stats.get("global_share", 0.0)))

    train(model, optimizer, step_loss,
          lambda: iterate_batches(train_rows, schedule.batch_size, shuffle=True, generator=gen, shard=True),
          TrainSchedule(epochs=schedule.epochs, grad_clip=schedule.grad_clip, warmup_steps=schedule.warmup_steps,
                        cosine=schedule.cosine),
          steps_per_epoch=-(-len(train_rows) // schedule.batch_size), phase=f"{PHASE}:{target.name}",
          history=ctx.history, generator=gen, store=store, checkpoint_phase=PHASE,
          val_loss=lambda m: evaluate_loss(m, val_rows, graph, schedule.batch_size,
                                           ctx.seed + VALIDATION_SEED_OFFSET, device),
          device=device, logger=ctx.logger, label=f"{model_name} pretrain", desc="pretrain epochs")
    return model.eval()
