"""Pretraining of TrajGANR (eqs. 6-7) through the one training engine, and model save/load.

Sampling (appendix A.1.2, trajectory-centric): every epoch, each TRAIN trajectory (capped by
``max_trips``) contributes one sample ``(trajectory, query location)`` with a location drawn
among those its path passes (within delta); with ``positives_per_location`` = P > 1 each sample
brings P - 1 other TRAIN trajectories passing the same location, so co-located trajectories are
extra positives in the same batch. Each step: windows of the trajectories (random down-sampling,
:mod:`.windows`), localized trajectory embeddings at the query locations (eq. 4; segment-pooled
for ``alignment: segment``), location embeddings (eq. 2), image embeddings when the locations
have street-view features; the eq. 7 loss against the queue; then the MoCo key encoder's
embeddings of the batch locations and of ``random_locations`` uniform random locations in the
study area are enqueued. ``alignment: none`` trains nothing (no alignment objective: the
encoders keep their seeded random initialisation).

Randomness (sample choice, shuffles, down-sampling, random locations) comes from the run's
generator, checkpointed by the engine after every epoch (exact resume).

Data parallelism (K processes, :mod:`trajzoo.training.distributed`): every process builds the
same global batches (same generator) and down-samples the windows of all of them; it encodes the
trajectories of its contiguous share only, and the locations (and images) of the whole batch,
cheap coordinate encoders that give every anchor its positives and in-batch negatives from the
whole global batch; its loss is its share of eq. 7 (:func:`~trajzoo_trajganr.objective.pretraining_loss`
with ``anchors``), the gradients are summed, and every process enqueues the MoCo keys of the whole
global batch (computed from its locations, the same queue as one process), so K processes train
as one.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from trajzoo.runlog import config_digest
from trajzoo.training import distributed
from trajzoo.training.checkpoints import CheckpointStore
from trajzoo.training.engine import StepLoss, TrainSchedule, train
from trajzoo.training.loop import atomic_save, load_checkpoint, tensor_digest

from .model import TrajGANR, segment_radius_m
from .objective import pretraining_loss
from .parameters import PretrainConfig, TrajGANRConfig
from .space2vec import normalise_xy
from .windows import collate_windows

MODEL_NAME = "trajganr"


def sample_groups(trips_by_loc: dict[int, list[str]], locs_by_trip: dict[str, list[int]], trip_ids: list[str],
                  positives: int, generator: torch.Generator) -> list[list[tuple[int, str]]]:
    """One epoch of sample groups: per trajectory (in a random order) a random location it
    passes and up to ``positives - 1`` other trajectories at that location (random, distinct).

    Returns:
        A list of groups, each a list of ``(location_id, trip_id)``.
    """
    groups = []
    for i in torch.randperm(len(trip_ids), generator=generator).tolist():
        t = trip_ids[i]
        locs = locs_by_trip[t]
        loc = locs[int(torch.randint(len(locs), (1,), generator=generator))]
        group = [(loc, t)]
        others = [o for o in trips_by_loc[loc] if o != t]
        if positives > 1 and others:
            pick = torch.randperm(len(others), generator=generator)[:positives - 1].tolist()
            group += [(loc, others[j]) for j in pick]
        groups.append(group)
    return groups


def batches_of(groups: list[list[tuple[int, str]]], batch_size: int):
    """Consecutive groups packed into batches of at most ``batch_size`` samples (a group is never split)."""
    batch = []
    for g in groups:
        if batch and len(batch) + len(g) > batch_size:
            yield batch
            batch = []
        batch += g
    if batch:
        yield batch


def pretrain(model: TrajGANR, inputs, cfg: PretrainConfig, ctx) -> list[dict]:
    """Pretrain ``model`` in place on the TRAIN view ``inputs`` (:class:`trajzoo.locations.LocationInputs`).

    Returns:
        The per-epoch history (``phase`` ``pretrain``, ``train_loss``, ``L_TL``, ``L_IL``,
        ``L_TI``, ``n_trips``), also appended to ``ctx.history``.

    Raises:
        ValueError: no train trajectory passes any location.
    """
    device = ctx.device
    model.to(device)
    mc = model.config
    if mc.alignment == "none":
        ctx.logger.info("alignment none: no alignment objective, the encoders keep their initialisation")
        return []
    assoc = inputs.trips
    trips_by_loc = assoc.groupby("location_id")["trip_id"].apply(list).to_dict()
    locs_by_trip = assoc.groupby("trip_id")["location_id"].apply(list).to_dict()
    trip_ids = sorted(locs_by_trip)
    if cfg.max_trips is not None and len(trip_ids) > cfg.max_trips:
        keep = np.sort(np.random.default_rng(ctx.seed).choice(len(trip_ids), size=cfg.max_trips, replace=False))
        trip_ids = [trip_ids[i] for i in keep]
    if not trip_ids:
        raise ValueError(f"{inputs.city}: no train trajectory passes a task location (locations stage)")
    table_xy = torch.from_numpy(inputs.table[["x", "y"]].to_numpy(np.float64).copy())
    table_norm = normalise_xy(table_xy, inputs.frame["bbox_xy"])
    images = torch.from_numpy(inputs.images) if inputs.images is not None and model.image_proj is not None else None
    radius = segment_radius_m(inputs.frame)
    gen = ctx.generator(offset=0)
    fingerprint = config_digest({"model": mc.to_dict(), "schedule": asdict(cfg), "seed": ctx.seed,
                                 "trips": len(trip_ids), "first": trip_ids[:3], "init": tensor_digest(model.state_dict())})
    store = CheckpointStore(ctx.checkpoint_dir, fingerprint)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    ctx.logger.info("pretrain on %d train trajectories passing %d locations; %d parameters", len(trip_ids),
                    len(trips_by_loc), model.num_parameters())

    sharded = distributed.world()[1] > 1  # data parallelism: each process encodes its share

    def step_loss(m: TrajGANR, samples):
        m.momentum_update()
        loc_ids = torch.tensor([l for l, _ in samples], dtype=torch.long)
        # the windows' down-sampling is drawn for the whole (global) batch, as one process would
        wb = collate_windows([inputs.rows[t] for _, t in samples], mc.window, inputs.frame["bbox_xy"], gen)
        q_xy, q_m = table_norm[loc_ids].to(device), table_xy[loc_ids].to(device)
        if sharded:  # this process's trajectories; locations and images of the whole batch
            start, stop = distributed.share_bounds(len(samples))
            traj = m.localized_or_pooled(wb.rows(start, stop).to(device), q_xy[start:stop], q_m[start:stop], radius)
        else:
            traj = m.localized_or_pooled(wb.to(device), q_xy, q_m, radius)
        loc = m.location(q_xy)
        img = m.image_embedding(images[loc_ids].to(device)) if images is not None else None
        q_emb, q_ids = m.queue.contents()
        loss, stats = pretraining_loss(traj, loc, img, loc_ids.to(device), q_emb, q_ids, mc.temperature,
                                       slice(start, stop) if sharded else None)
        with torch.no_grad():  # every process enqueues the keys of the whole global batch (same queue)
            rnd = torch.rand(mc.random_locations, 2, generator=gen) * 2 - 1
            keys = m.key_location(torch.cat([q_xy, rnd.to(device)]))
            m.queue.enqueue(keys, torch.cat([loc_ids, torch.full((len(rnd),), -1, dtype=torch.long)]).to(device))
        return StepLoss(loss, value=stats["loss"], weight=len(samples),
                        stats={k: stats[k] for k in ("L_TL", "L_IL", "L_TI")}, global_share=sharded)

    def fields(r):
        return {**{k: r.train.stats.get(k, float("nan")) for k in ("L_TL", "L_IL", "L_TI")}, "n_trips": len(trip_ids)}

    train(model, opt, step_loss,
          lambda: batches_of(sample_groups(trips_by_loc, locs_by_trip, trip_ids, cfg.positives_per_location, gen),
                             cfg.batch_size),
          TrainSchedule(epochs=cfg.epochs, steps_per_epoch=cfg.max_steps_per_epoch, grad_clip=cfg.grad_clip),
          phase="pretrain", history=ctx.history, generator=gen, store=store, device=device, logger=ctx.logger,
          extra_fields=fields)
    return [h for h in ctx.history if h.get("phase") == "pretrain"]


def save_model(path: Path | str, model: TrajGANR, extra: dict | None = None) -> None:
    """Atomically write hparams, image width, weights and the baseline's stored features."""
    payload = {"model": MODEL_NAME, "hparams": model.config.to_dict(), "image_dim": model.image_dim or 0,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "fixed_features": {k: v.detach().cpu() for k, v in model.fixed_features.items()}}
    payload.update(extra or {})
    atomic_save(payload, Path(path))


def load_model(path: Path | str, device="cpu") -> TrajGANR:
    """Rebuild a model written by :func:`save_model`, in eval mode.

    Raises:
        ValueError: the file holds another model.
    """
    ckpt = load_checkpoint(Path(path), device)
    if ckpt.get("model") != MODEL_NAME:
        raise ValueError(f"{path}: holds model {ckpt.get('model')!r}, not {MODEL_NAME!r}")
    model = TrajGANR(TrajGANRConfig.from_dict(ckpt["hparams"]), int(ckpt["image_dim"]) or None)
    model.load_state_dict(ckpt["state_dict"])
    model.fixed_features = dict(ckpt.get("fixed_features") or {})
    return model.to(device).eval()
