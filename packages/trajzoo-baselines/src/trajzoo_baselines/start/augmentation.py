"""Data augmentations of START's contrastive learning (Jiang et al., ICDE 2023, Section
"Trajectory Contrastive Learning / data augmentation"): trajectory trimming and temporal shifting.

* Trimming: remove a short piece, 5-15 % of the trajectory, from its start OR its end (the
  trajectory's travel semantics barely change).
* Temporal shifting: pick about 15 % of the segments and move their travel times by 15-30 %
  toward their mean travel time, ``t' = t + r (t_mean - t)``, r ~ U(0.15, 0.3) (the paper's
  historical average travel time of the segment; here the mean over the TRAIN trips, falling back
  to the trajectory's own mean travel time for a segment never observed). Entry times, hence the
  intervals the time-interval bias reads, and the minute of day / day of week of the later
  segments change accordingly.

Both take an explicit CPU ``torch.Generator`` and return a new :class:`TrajectoryBatch` (padding
only at the end of each row, as the core's batching produces); the input is not modified.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from trajzoo.data.batch import TrajectoryBatch

from .trajectory_encoder import DAYS_PER_WEEK, MINUTES_PER_DAY


def trim_trajectories(batch: TrajectoryBatch, trim_ratio: tuple[float, float], generator: torch.Generator
                      ) -> TrajectoryBatch:
    """Trajectory trimming: drop a fraction r ~ U(trim_ratio) of each trajectory from its start or
    from its end (side chosen with probability 1/2).

    A trajectory with n real positions loses ``k = clip(round(r n), 1, n - 1)`` positions (0 when
    n = 1). The kept window is moved to column 0; ``seconds`` are re-based to the window's first
    position; minute of day, day of week and ``time_known`` travel with their positions. The
    result is padded to the longest kept window.

    Args:
        batch: ``(B, L)`` trajectories (padding a suffix of each row).
        trim_ratio: (min, max) removed fraction, ``0 < min <= max < 1`` (paper: 0.05, 0.15).
        generator: CPU generator.

    Returns:
        ``(B, L')`` batch, L' <= L; trip ids unchanged.

    Raises:
        ValueError: a bad ``trim_ratio``.
    """
    lo, hi = trim_ratio
    if not 0.0 < lo <= hi < 1.0:
        raise ValueError(f"trim_ratio must satisfy 0 < min <= max < 1, got {trim_ratio}")
    device = batch.roads.device
    n = batch.lengths.cpu()  # (B,)
    b, length = batch.roads.shape
    r = lo + torch.rand(b, generator=generator, dtype=torch.float64) * (hi - lo)
    from_start = torch.rand(b, generator=generator) < 0.5
    k = torch.minimum(torch.round(r * n.double()).long().clamp(min=1), (n - 1).clamp(min=0))
    keep = n - k
    start = torch.where(from_start, k, torch.zeros_like(k))
    new_length = max(int(keep.max()), 1) if b else 0
    cols = torch.arange(new_length)
    index = (start.unsqueeze(1) + cols).clamp(max=max(length - 1, 0)).to(device)  # (B, L')
    pad = (cols.unsqueeze(0) >= keep.unsqueeze(1)).to(device)

    def _take(x: torch.Tensor, fill) -> torch.Tensor:
        return torch.gather(x, 1, index).masked_fill(pad, fill)

    seconds = torch.gather(batch.seconds, 1, index)
    seconds = (seconds - seconds[:, :1]).masked_fill(pad, 0.0)
    return replace(batch, roads=_take(batch.roads, 0), padding_mask=pad, seconds=seconds,
                   day_of_week=_take(batch.day_of_week, 0), minute_of_day=_take(batch.minute_of_day, 0),
                   time_known=torch.gather(batch.time_known, 1, index) & ~pad)


def travel_times(batch: TrajectoryBatch) -> tuple[Tensor, Tensor]:
    """Per-position travel times ``seconds[i + 1] - seconds[i]`` and where they are defined.

    Returns:
        ``(tt, defined)``: ``(B, L)`` float seconds (0 where undefined) and ``(B, L)`` bool, True
        where positions i and i + 1 are real with known times (the last position has none).
    """
    pad, known = batch.padding_mask, batch.time_known & ~batch.padding_mask
    nxt_known = torch.cat([known[:, 1:], torch.zeros_like(known[:, :1])], dim=1)
    defined = known & nxt_known & ~pad
    nxt = torch.cat([batch.seconds[:, 1:], batch.seconds[:, -1:]], dim=1)
    tt = (nxt - batch.seconds).masked_fill(~defined, 0.0)
    return tt, defined


def shift_times(batch: TrajectoryBatch, fraction: float, ratio: tuple[float, float], generator: torch.Generator,
                road_mean_seconds: Tensor | None = None) -> TrajectoryBatch:
    """Temporal shifting: move the travel times of about ``fraction`` of the segments toward their mean.

    Of the m positions with a travel time (:func:`travel_times`), ``clip(round(fraction m), 1, m)``
    are chosen uniformly without replacement; each gets ``t' = t + r (t_mean - t)``, r ~ U(ratio),
    with ``t_mean = road_mean_seconds[road]`` where that is > 0, else the trajectory's mean travel
    time. Entry times are rebuilt as ``seconds'_0 = 0, seconds'_{i+1} = seconds'_i + t'_i``
    (positions after an unknown time keep their offset), and minute of day / day of week move by
    the rounded change of the entry time in minutes (wrapping midnight). Padding stays 0.

    Args:
        batch: ``(B, L)`` trajectories.
        fraction: share of the segments shifted, in (0, 1] (paper: 0.15).
        ratio: (min, max) of r, ``0 < min <= max <= 1`` (paper: 0.15, 0.3).
        generator: CPU generator.
        road_mean_seconds: optional ``(N,)`` mean travel time of every road in seconds (0 = unknown).

    Returns:
        ``(B, L)`` batch with changed ``seconds``, ``minute_of_day`` and ``day_of_week``.

    Raises:
        ValueError: ``fraction`` or ``ratio`` out of range.
    """
    from trajzoo.nn.random_mask import random_subset

    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not 0.0 < ratio[0] <= ratio[1] <= 1.0:
        raise ValueError(f"ratio must satisfy 0 < min <= max <= 1, got {ratio}")
    device = batch.seconds.device
    tt, defined = travel_times(batch)
    b, l = tt.shape
    m = defined.sum(dim=1).cpu()
    count = torch.minimum(torch.round(fraction * m.double()).long().clamp(min=1), m)
    chosen = random_subset(defined.cpu(), count, generator).to(device)
    r = (ratio[0] + torch.rand(b, l, generator=generator, dtype=torch.float64) * (ratio[1] - ratio[0])).to(device)
    traj_mean = tt.sum(dim=1, keepdim=True) / defined.sum(dim=1, keepdim=True).clamp(min=1)
    target = traj_mean.expand(b, l)
    if road_mean_seconds is not None:
        road_mean = road_mean_seconds.to(device)[batch.roads.masked_fill(batch.padding_mask, 0)].to(tt.dtype)
        target = torch.where(road_mean > 0, road_mean, target)
    new_tt = torch.where(chosen, tt + r.to(tt.dtype) * (target - tt), tt)
    delta = torch.cumsum(new_tt - tt, dim=1)  # change of the entry time of position i + 1
    delta = torch.cat([torch.zeros_like(delta[:, :1]), delta[:, :-1]], dim=1)
    pad = batch.padding_mask
    seconds = (batch.seconds + delta).masked_fill(pad, 0.0)
    total = batch.minute_of_day + torch.round(delta / 60.0).long()
    minute = torch.remainder(total, MINUTES_PER_DAY)
    day = torch.remainder(batch.day_of_week + torch.div(total, MINUTES_PER_DAY, rounding_mode="floor"), DAYS_PER_WEEK)
    return replace(batch, seconds=seconds, minute_of_day=minute.masked_fill(pad, 0), day_of_week=day.masked_fill(pad, 0))


def road_mean_travel_seconds(road_sequences, second_sequences, num_segments: int) -> Tensor:
    """``(N,)`` float64 mean travel time (s) of each road over the given trips (0 = never observed).

    Args:
        road_sequences, second_sequences: per trip, road ids and entry times in seconds.
        num_segments: N.
    """
    total = torch.zeros(num_segments, dtype=torch.float64)
    count = torch.zeros(num_segments, dtype=torch.float64)
    for roads, secs in zip(road_sequences, second_sequences):
        r = torch.as_tensor(roads, dtype=torch.long).reshape(-1)
        t = torch.as_tensor(secs, dtype=torch.float64).reshape(-1)
        if r.numel() > 1:
            total.index_add_(0, r[:-1], t[1:] - t[:-1])
            count.index_add_(0, r[:-1], torch.ones(r.numel() - 1, dtype=torch.float64))
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))


__all__ = ["trim_trajectories", "shift_times", "travel_times", "road_mean_travel_seconds"]
