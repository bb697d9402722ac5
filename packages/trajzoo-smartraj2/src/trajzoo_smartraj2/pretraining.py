"""Multi-city joint pretraining of SMARTraj2 (Section 3, appendix B.1.4).

One model is trained on every training city at once (``cross-city``: the target and the sources;
``in-city``: the target alone): each optimisation step takes one batch of one city (so that the
city's M_k, gates and cell table are used and L_diff is computed per city, eq. 6), and the cities'
batches are interleaved round-robin within an epoch. AdamW; linear warm-up over the first
``warmup_epochs`` epochs, then cosine annealing (the core engine's schedule,
:class:`trajzoo.training.engine.TrainSchedule`); per-epoch checkpoints with exact resume.
Only TRAIN trips are trained on (a seeded subset of at most ``max_trips_per_city`` per city);
the VAL trips' loss (masks from a fixed seed) is logged.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from trajzoo.data.city import collate, trip_rows
from trajzoo.data.views import build_city_views, city_features, collate_views
from trajzoo.runlog import config_digest
from trajzoo.training.checkpoints import CheckpointStore
from trajzoo.training.engine import StepLoss, TrainSchedule, train

from .config import PretrainSchedule  # noqa: F401 (re-exported: torch-free module)
from .model import SMARTraj2, SMARTraj2Config, city_spec

PHASE = "pretrain"
VALIDATION_SEED_OFFSET = 7


def prepare_city(prepared, config: SMARTraj2Config, logger=None):
    """Views, spec and the road graph of one :class:`trajzoo.data.prepared.PreparedCity`.

    Returns:
        ``(views, spec)`` (:class:`trajzoo.data.views.CityViews`, :func:`city_spec` dict).
    """
    views = build_city_views(prepared, config.filters)
    road = prepared.require("road")
    spec = city_spec(prepared.name, road.graph, views, city_features(views, road.trips))
    if logger is not None:
        counts = ", ".join(f"{o}={c}" for o, c in zip(views.qc["outcome"], views.qc["count"]))
        logger.info("%s views: %s; F^city %s", prepared.name, counts, np.round(spec["city_features"], 3).tolist())
    return views, spec


def view_rows(prepared, views, split: str) -> list[dict]:
    """Route rows (:func:`trajzoo.data.city.trip_rows`) of the kept trips of one split, by trip id."""
    trips = prepared.require("road").trips
    keep = set(views.trip_ids(split))
    return trip_rows(trips[trips["trip_id"].astype(str).isin(keep)].sort_values("trip_id"))


def _subset(rows: list[dict], cap: int | None, seed: int) -> list[dict]:
    if cap is None or len(rows) <= cap:
        return rows
    pick = np.sort(np.random.default_rng(seed).permutation(len(rows))[:cap])
    return [rows[i] for i in pick]


def pretrain_multi_city(cities: list, config: SMARTraj2Config, schedule: PretrainSchedule, ctx) -> SMARTraj2:
    """Build SMARTraj2 over ``cities`` (target first) and pretrain it jointly (eq. 15).

    The model is built from the seeded global torch RNG here; on resume its weights, optimiser,
    generator and history come from the checkpoint.

    Args:
        cities: :class:`trajzoo.data.prepared.PreparedCity` with roads, points and grid.
        config, schedule: hyper-parameters and schedule. ctx: :class:`trajzoo.training.loop.RunContext`.

    Returns:
        The model in eval mode with every city's views attached.

    Raises:
        ValueError: no city, or a city with no kept train trip.
    """
    if not cities:
        raise ValueError("SMARTraj2 pretraining needs at least one city")
    device = ctx.device
    prepared = {c.name: c for c in cities}
    views, specs = {}, []
    for c in cities:
        views[c.name], spec = prepare_city(c, config, ctx.logger)
        specs.append(spec)
    model = SMARTraj2(specs, config).to(device)
    for v in views.values():
        model.attach_views(v)
    graphs = {n: c.require("road").graph.to(device) for n, c in prepared.items()}
    train_rows = {n: _subset(view_rows(prepared[n], views[n], "train"), schedule.max_trips_per_city, ctx.seed)
                  for n in prepared}
    val_rows = {n: _subset(view_rows(prepared[n], views[n], "val"), schedule.max_val_trips, ctx.seed)
                for n in prepared}
    for n, rows in train_rows.items():
        if not rows:
            raise ValueError(f"SMARTraj2: city {n!r} has no train trip that passes the view filters")
        ctx.logger.info("%s: pretraining on %d train trips, validating on %d", n, len(rows), len(val_rows[n]))
    if schedule.epochs == 0:
        return model.eval()
    bs = schedule.batch_size
    steps_per_epoch = sum(-(-len(r) // bs) for r in train_rows.values())
    gen = ctx.generator(offset=0)

    def batches():
        per_city = []
        for n in prepared:  # config order: target first
            order = torch.randperm(len(train_rows[n]), generator=gen).tolist()
            per_city.append([(n, [train_rows[n][i] for i in order[s:s + bs]]) for s in range(0, len(order), bs)])
        for i in range(max(len(p) for p in per_city)):
            for p in per_city:
                if i < len(p):
                    yield p[i]

    def step_loss(m, item):
        name, rows = item
        vb = collate_views(collate(rows), views[name]).to(device)
        loss, stats = m.loss(vb, graphs[name], gen)
        return StepLoss(loss, weight=len(rows), stats=stats)

    def val_loss(m) -> float:
        m.eval()
        g = torch.Generator().manual_seed(ctx.seed + VALIDATION_SEED_OFFSET)
        total, count = 0.0, 0
        with torch.no_grad():
            for n in prepared:
                rows = val_rows[n]
                for s in range(0, len(rows), bs):
                    part = rows[s:s + bs]
                    loss, _ = m.loss(collate_views(collate(part), views[n]).to(device), graphs[n], g)
                    total += float(loss) * len(part)
                    count += len(part)
        return total / count if count else float("nan")

    fingerprint = config_digest({"model": "smartraj2", "hparams": asdict(config), "schedule": asdict(schedule),
                                 "seed": ctx.seed, "cities": [[s["name"], s["num_segments"], s["n_cells"]] for s in specs],
                                 "trips": {n: len(r) for n, r in train_rows.items()}})
    optimizer = torch.optim.AdamW(model.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
    train(model, optimizer, step_loss, batches,
          TrainSchedule(epochs=schedule.epochs, grad_clip=schedule.grad_clip,
                        warmup_steps=schedule.warmup_epochs * steps_per_epoch, cosine=True,
                        min_lr_ratio=schedule.min_lr_ratio),
          steps_per_epoch=steps_per_epoch, phase=f"{PHASE}:{'+'.join(prepared)}", history=ctx.history,
          generator=gen, store=CheckpointStore(ctx.checkpoint_dir, fingerprint), checkpoint_phase=PHASE,
          val_loss=val_loss, device=device, logger=ctx.logger, label="smartraj2 pretrain", desc="pretrain epochs",
          extra_fields=lambda r: {k: round(v, 6) for k, v in r.train.stats.items()})
    return model.eval()
