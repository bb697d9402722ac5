"""Masked-modality recovery objective of TransferTraj pretraining.

Source: TransferTraj paper, section "Unified Task-Transferable Input-Output Scheme" (MSE recovery
of the masked spatial and temporal modalities). Loss::

    L = w_s * mean_{i in S} ||xy_hat_i - xy_i||^2 / 2 / 1000^2      (km^2, mean over S and both axes)
      + w_t * mean_{i in T} (t_hat_i - t_i)^2                      (minutes^2)
      + load_balance_weight * LB                                   (SC-MoE, see sc_moe.py)

with S (T) the points whose spatial (temporal) modality is hidden. In training mode the batch first
goes through :func:`context_dropout` (``context_dropout`` of the config), so that the model sees
both "context present" and "context absent" in every city that has the context. x, y errors are measured in
kilometres (metres / 1000) so that both terms are of order 1 for typical urban trips (a 1 km
error costs as much as a 1 minute error); a term whose mask is empty is 0.

Data parallelism (K processes, :mod:`trajzoo.training.distributed`): context dropout and masks
are drawn for the whole global batch and each process computes its share of the global batch's
loss (summed over the processes by the engine), so K processes train as one.
"""
from __future__ import annotations

import torch
from torch import Tensor

from dataclasses import replace

from trajzoo.data.points import PointBatch
from trajzoo.training.distributed import global_batch_of

from .masking import config_masks
from .parameters import TransferTrajConfig


def context_dropout(batch: PointBatch, p: float, generator: torch.Generator) -> PointBatch:
    """Show some trajectories as if their city lacked a context kind.

    Per trajectory and independently for POI and road, with probability ``p`` (drawn from
    ``generator``, CPU), ``has_context`` is set False and that kind's values are zeroed
    (POI: ``poi_category`` and ``context[..., 0]``; road: ``road_class``, ``road_lanes``,
    ``road_maxspeed`` and ``context[..., 1]``). Trajectories of a city without the context are
    unchanged (already absent).

    Args:
        batch: ``(B, L)`` points. p: probability in [0, 1]. generator: CPU generator.

    Returns:
        The new batch (``batch`` itself when ``p == 0``).
    """
    if p <= 0:
        return batch
    b = batch.batch_size
    drop = (torch.rand(b, 2, generator=generator) < p).to(batch.has_context.device)  # (B, 2): POI, road
    keep = batch.has_context & ~drop.unsqueeze(1)  # (B, L, 2)
    gone = ~keep
    poi_gone, road_gone = gone[..., 0], gone[..., 1]
    return replace(batch, has_context=keep, context=batch.context.masked_fill(gone, 0.0),
                   poi_category=batch.poi_category.masked_fill(poi_gone, 0),
                   road_class=batch.road_class.masked_fill(road_gone, 0),
                   road_lanes=batch.road_lanes.masked_fill(road_gone, 0),
                   road_maxspeed=batch.road_maxspeed.masked_fill(road_gone, 0))


def recovery_loss(pred: dict[str, Tensor], batch: PointBatch, spatial_weight: float = 1.0,
                  temporal_weight: float = 1.0, global_counts: tuple[int, int] | None = None
                  ) -> tuple[Tensor, dict[str, float]]:
    """MSE recovery of the hidden modalities.

    Args:
        pred: ``{"xy": (B, L, 2) metres, "t_minutes": (B, L)}`` from ``TransferTraj.predict``.
        batch: the batch WITH its true values and the masks under which ``pred`` was made.
        spatial_weight, temporal_weight: w_s, w_t.
        global_counts: under data parallelism, ``(|S|, |T|)`` of the whole global batch of which
            ``batch`` is a share: each mean becomes this share's summed squared errors over the
            global batch's count (the processes' shares sum to the global batch's means).

    Returns:
        ``(loss, stats)``: loss a graph-connected scalar; stats floats ``xy_mse_km2``,
        ``t_mse_min2`` (shares with ``global_counts``), ``n_spatial``, ``n_temporal`` (this batch's).
    """
    s_mask, t_mask = batch.spatial_mask, batch.temporal_mask
    zero = pred["xy"].sum() * 0.0
    n_s, n_t = int(s_mask.sum()), int(t_mask.sum())
    d_s, d_t = (n_s, n_t) if global_counts is None else global_counts
    if n_s:
        diff_km = (pred["xy"][s_mask] - batch.xy[s_mask].to(pred["xy"].dtype)) / 1000.0
        xy_mse = diff_km.pow(2).mean() if global_counts is None else diff_km.pow(2).sum() / (2 * d_s)
    else:
        xy_mse = zero
    if n_t:
        sq = (pred["t_minutes"][t_mask] - batch.t_minutes[t_mask].to(pred["t_minutes"].dtype)).pow(2)
        t_mse = sq.mean() if global_counts is None else sq.sum() / d_t
    else:
        t_mse = zero
    loss = spatial_weight * xy_mse + temporal_weight * t_mse
    return loss, {"xy_mse_km2": float(xy_mse.detach()), "t_mse_min2": float(t_mse.detach()),
                  "n_spatial": float(n_s), "n_temporal": float(n_t)}


def pretraining_loss(model, batch: PointBatch, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
    """One pretraining loss evaluation: draw unified masks, predict from the visible view, score.

    Args:
        model: a :class:`~trajzoo_transfertraj.model.TransferTraj` (its config gives the mask
            and loss parameters).
        batch: a :class:`PointBatch` with true values (its own masks are ignored and replaced).
        generator: CPU generator for the masks (and, in training mode, the context dropout).

    Returns:
        ``(loss, stats)``: recovery loss + ``model.auxiliary_loss()``; stats as
        :func:`recovery_loss` plus ``loss``, ``recovery``, ``load_balance`` (unweighted LB) and
        ``span_fraction`` (fraction of trajectories with a masked span).
    """
    cfg: TransferTrajConfig = model.config
    full = global_batch_of(batch)
    if full is not None:  # data parallelism: draw for the whole global batch, keep this share
        return _share_loss(model, batch, full, generator)
    if model.training:
        batch = context_dropout(batch, cfg.context_dropout, generator)
    spatial, temporal, has_span = config_masks(cfg, batch.padding_mask, generator)
    masked = batch.with_masks(spatial, temporal)
    pred = model.predict(masked.visible())
    rec, stats = recovery_loss(pred, masked, cfg.spatial_loss_weight, cfg.temporal_loss_weight)
    total = rec + model.auxiliary_loss()
    stats.update(loss=float(total.detach()), recovery=float(rec.detach()), load_balance=float(model.load_balance().detach()))
    stats["span_fraction"] = float(has_span.float().mean()) if has_span.numel() else 0.0
    return total, stats


def _share_loss(model, batch: PointBatch, full: PointBatch, generator: torch.Generator
                ) -> tuple[Tensor, dict[str, float]]:
    """:func:`pretraining_loss` of this process's share of a global batch under data parallelism.

    Context dropout and the unified masks are drawn for the whole global batch ``full`` (the
    same draws and generator state as one process on it) and this process's rows kept
    (:func:`trajzoo.training.distributed.local_rows`); the recovery means are this share's sums
    over the global batch's counts and the load-balancing term the share of
    :func:`~trajzoo_transfertraj.sc_moe.load_balance_loss`, so the processes' losses, gradients and
    stats (``loss``, ``recovery``, ``xy_mse_km2``, ``t_mse_min2``, ``load_balance``,
    ``span_fraction``) sum to one process's. ``stats["global_share"] = 1``.
    """
    from trajzoo.training.distributed import local_rows

    cfg: TransferTrajConfig = model.config
    if model.training:
        full = context_dropout(full, cfg.context_dropout, generator)
    spatial, temporal, has_span = config_masks(cfg, full.padding_mask, generator)
    counts = (int(spatial.sum()), int(temporal.sum()))
    masked = local_rows(full.with_masks(spatial, temporal))
    pred = model.predict(masked.visible())
    rec, stats = recovery_loss(pred, masked, cfg.spatial_loss_weight, cfg.temporal_loss_weight, counts)
    total = rec + model.auxiliary_loss()
    stats.update(loss=float(total.detach()), recovery=float(rec.detach()), load_balance=float(model.load_balance().detach()),
                 global_share=1.0)
    stats["span_fraction"] = float(local_rows(has_span).sum()) / full.batch_size if full.batch_size else 0.0
    return total, stats
