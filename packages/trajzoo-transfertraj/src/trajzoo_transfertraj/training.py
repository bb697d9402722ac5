"""Pretraining loop of TransferTraj over one or several cities, plus model save/load.

Source: TransferTraj paper, section "Unified Task-Transferable Input-Output Scheme" (pretraining
by masked-modality recovery) and "Region transferability" (a model pretrained on source regions
is applied to a target region). One model is pretrained on the trajectories of every city in
``rows_by_city`` (in-city: the target alone; zero-/few-shot: the source cities only).

Mixing cities: a :class:`~trajzoo.data.points.PointBatch` belongs to one city, so each epoch
builds the shuffled batches of every city (:func:`trajzoo.data.points.iterate_point_batches`)
and visits them in one random interleaving, drawn from the run's generator: every trajectory
is seen once per epoch and consecutive steps alternate between cities in proportion to their
sizes. Masks come from the same generator (:func:`~trajzoo_transfertraj.masking.unified_masks`),
gate noise from the global torch RNG (seeded by the caller, restored on resume).

Training runs through the one engine (:func:`trajzoo.training.engine.train`: AdamW, gradient-norm
clipping, at most ``max_steps_per_epoch`` steps per epoch). A checkpoint (model, optimiser,
generator, global RNGs, history) is written atomically after every epoch with
:class:`trajzoo.training.checkpoints.CheckpointStore`; a killed run started again with the same
definition resumes after the last completed epoch and reaches the same weights.

Data parallelism (K processes, :mod:`trajzoo.training.distributed`): each process takes its share
of every global batch; masks are drawn for the global batch and the loss is each process's share
of the global batch's (:func:`~trajzoo_transfertraj.objective.pretraining_loss`) and the gate noise
is drawn for the global batch's points, so the weights match one process to float tolerance when
dropout is 0 (the default; dropout draws from the global torch RNG per element of the share:
statistically equivalent, not the same draws).
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trajzoo.data.points import iterate_point_batches
from trajzoo.runlog import config_digest
from trajzoo.training.checkpoints import CheckpointStore
from trajzoo.training.distributed import sum_tensor_over_processes
from trajzoo.training.engine import StepLoss, TrainSchedule, train
from trajzoo.training.loop import RunContext, atomic_save, load_checkpoint, tensor_digest

from .model import TransferTraj
from .objective import pretraining_loss
from .parameters import PretrainConfig, TransferTrajConfig  # noqa: F401 (PretrainConfig re-exported: torch-free module)

MODEL_NAME = "transfertraj"
STATS = ("xy_mse_km2", "t_mse_min2", "load_balance")
"""Per-step statistics of :func:`~trajzoo_transfertraj.objective.pretraining_loss` averaged into
each epoch's history row."""


def cap_rows(rows: list[dict], cap: int | None, seed: int) -> list[dict]:
    """At most ``cap`` rows: a random subset (``numpy.random.default_rng(seed)``) kept in input
    order, or all rows when ``cap`` is None or not exceeded."""
    if cap is None or len(rows) <= cap:
        return list(rows)
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=cap, replace=False))
    return [rows[i] for i in keep]


def interleaved_batches(rows_by_city: dict[str, list[dict]], batch_size: int, max_len: int,
                        generator: torch.Generator, shard: bool = False):
    """One epoch of batches of every city in a random interleaving.

    Yields ``PointBatch`` es (each of one city). The per-city shuffles and the interleaving are
    drawn from ``generator``; batches are collated lazily. ``shard``: under data parallelism
    each batch is a global batch of which this process gets its share
    (:func:`trajzoo.data.points.iterate_point_batches`).
    """
    cities = sorted(rows_by_city)
    iters = {c: iterate_point_batches(rows_by_city[c], batch_size, c, max_len, shuffle=True, generator=generator,
                                      shard=shard)
             for c in cities}
    sizes = [-(-len(rows_by_city[c]) // batch_size) for c in cities]
    schedule = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(sizes)]) if cities else \
        torch.zeros(0, dtype=torch.long)
    schedule = schedule[torch.randperm(len(schedule), generator=generator)]
    for i in schedule.tolist():
        yield next(iters[cities[i]])


def pretraining_eval_loss(model: TransferTraj, rows_by_city: dict[str, list[dict]], batch_size: int, seed: int,
                          device) -> float:
    """Trip-weighted mean pretraining loss over ``rows_by_city`` in eval mode with masks from a
    fixed seed (comparable across epochs). NaN when there are no rows."""
    gen = torch.Generator().manual_seed(seed)
    total, n = 0.0, 0
    model.eval()
    with torch.no_grad():
        for city in sorted(rows_by_city):
            for batch in iterate_point_batches(rows_by_city[city], batch_size, city, model.config.max_len):
                loss, _ = pretraining_loss(model, batch.to(device), gen)
                total += float(loss) * batch.batch_size
                n += batch.batch_size
    return total / n if n else float("nan")


def pretrain(model: TransferTraj, rows_by_city: dict[str, list[dict]], cfg: PretrainConfig, ctx: RunContext,
             val_rows_by_city: dict[str, list[dict]] | None = None) -> list[dict]:
    """Pretrain ``model`` in place by masked-modality recovery on the trajectories of every city.

    Args:
        model: a fresh (or partially trained) :class:`TransferTraj`, moved to ``ctx.device``.
        rows_by_city: ``{city: point rows}`` (:func:`trajzoo.data.points.point_rows`), the train
            split of each pretraining city.
        cfg: schedule. ctx: device, seed, checkpoint folder, logger, history.
        val_rows_by_city: optional ``{city: rows}`` whose loss (fixed masks) is logged per epoch.

    Returns:
        The per-epoch history entries ``{"phase": "pretrain", "epoch", "train_loss", "val_loss",
        "xy_mse_km2", "t_mse_min2", "load_balance", "steps", "n_trips", "expert_usage"}`` (also
        appended to ``ctx.history``); ``expert_usage`` is the list of per-block lists of points
        routed to each expert during the epoch.

    Before training, :meth:`TransferTraj.set_context_used` records which context kinds (POI,
    road) the pretraining rows have; the model ignores the others at every target (their
    embeddings would be untrained). Context dropout (``context_dropout`` of the model config)
    is applied by :func:`~trajzoo_transfertraj.objective.pretraining_loss`.

    Raises:
        ValueError: no city or a city without rows.
    """
    if not rows_by_city:
        raise ValueError("pretrain: no city to pretrain on")
    empty = [c for c, r in rows_by_city.items() if not r]
    if empty:
        raise ValueError(f"pretrain: no trajectory for city/cities {empty}")
    device = ctx.device
    model.to(device)
    rows = {c: cap_rows(r, cfg.max_trips_per_city, ctx.seed) for c, r in rows_by_city.items()}
    # the model uses only the context kinds some pretraining trajectory has (issue 11: no
    # untrained POI / road embedding at a target whose context the sources lack)
    model.set_context_used(poi=any(bool(x["has_poi"]) for r in rows.values() for x in r),
                           road=any(bool(x["has_road"]) for r in rows.values() for x in r))
    val_rows = {c: cap_rows(r, cfg.max_trips_per_city, ctx.seed) for c, r in (val_rows_by_city or {}).items() if r}
    fingerprint = config_digest({"model": model.config.to_dict(), "schedule": asdict(cfg), "seed": ctx.seed,
                                 "cities": {c: len(r) for c, r in sorted(rows.items())},
                                 "first_trips": {c: [str(x["trip_id"]) for x in r[:3]] for c, r in sorted(rows.items())},
                                 "init": tensor_digest(model.state_dict())})
    store = CheckpointStore(ctx.checkpoint_dir, fingerprint)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = ctx.generator(offset=0)
    n_trips = {c: len(r) for c, r in rows.items()}
    ctx.logger.info("pretrain on %s trips, %d epochs, model with %d parameters", n_trips, cfg.epochs,
                    model.num_parameters())
    usage: dict[int, list] = {}

    def step_loss(m, batch):
        # data parallelism: batch is this process's share of a global batch and the loss its share
        # of the global batch's loss (stats "global_share"), summed over the processes
        loss, stats = pretraining_loss(m, batch.to(device), gen)
        return StepLoss(loss, value=stats["loss"], stats={k: stats[k] for k in STATS},
                        global_share=bool(stats.get("global_share", 0.0)))

    def record_usage(epoch, _result):
        # training steps only, before validation; every process's routing under data parallelism
        usage[epoch] = sum_tensor_over_processes(model.expert_usage(cumulative=True)).tolist()

    def fields(r):
        nan = float("nan")
        extra = {k: r.train.stats.get(k, nan) for k in STATS}
        extra.update(steps=r.train.steps, n_trips=sum(n_trips.values()), expert_usage=usage.pop(r.epoch))
        ctx.logger.info("pretrain epoch %d: xy %.4f km^2, t %.3f min^2, LB %.3f, expert usage %s", r.epoch,
                        extra["xy_mse_km2"], extra["t_mse_min2"], extra["load_balance"], extra["expert_usage"])
        return extra

    train(model, opt, step_loss, lambda: interleaved_batches(rows, cfg.batch_size, model.config.max_len, gen, shard=True),
          TrainSchedule(epochs=cfg.epochs, steps_per_epoch=cfg.max_steps_per_epoch, grad_clip=cfg.grad_clip,
                        warmup_steps=cfg.warmup_steps, cosine=cfg.cosine),
          steps_per_epoch=sum(-(-len(r) // cfg.batch_size) for r in rows.values()), phase="pretrain",
          history=ctx.history, generator=gen, store=store,
          val_loss=lambda m: pretraining_eval_loss(m, val_rows, cfg.batch_size, ctx.seed + 7, device) if val_rows
          else float("nan"),
          device=device, logger=ctx.logger, on_epoch_start=lambda _epoch: model.reset_expert_usage(),
          on_train_end=record_usage, extra_fields=fields)
    return [h for h in ctx.history if h.get("phase") == "pretrain"]


def save_model(path: Path | str, model: TransferTraj, extra: dict[str, Any] | None = None) -> None:
    """Atomically write ``{"model": "transfertraj", "hparams": config dict, "state_dict", **extra}``."""
    payload = {"model": MODEL_NAME, "hparams": model.config.to_dict(),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    payload.update(extra or {})
    atomic_save(payload, Path(path))


def load_model(path: Path | str, device: torch.device | str = "cpu") -> TransferTraj:
    """Rebuild a model written by :func:`save_model` (``weights_only`` loading), in eval mode.

    Raises:
        ValueError: the file holds another model.
    """
    ckpt = load_checkpoint(Path(path), device)
    if ckpt.get("model") != MODEL_NAME:
        raise ValueError(f"{path}: holds model {ckpt.get('model')!r}, not {MODEL_NAME!r}")
    model = TransferTraj(TransferTrajConfig.from_dict(ckpt["hparams"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval()
