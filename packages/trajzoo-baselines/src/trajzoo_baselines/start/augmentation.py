"""Data augmentations of START's contrastive learning (Jiang et al., ICDE 2023, Section
"Trajectory Contrastive Learning"): trajectory trimming and temporal shifting.

Both take an explicit CPU ``torch.Generator`` and return a new :class:`TrajectoryBatch` (padding
only at the end of each row, as the core's batching produces); the input is not modified.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from trajzoo.data.batch import TrajectoryBatch

from .trajectory_encoder import DAYS_PER_WEEK, MINUTES_PER_DAY


def trim_trajectories(batch: TrajectoryBatch, min_keep_fraction: float, generator: torch.Generator
                      ) -> TrajectoryBatch:
    """Trajectory trimming: keep a random contiguous window of each trajectory (drop a random
    prefix and/or suffix).

    A trajectory with n real positions keeps m positions, m uniform in
    [max(1, ceil(min_keep_fraction * n)), n], starting at an offset s uniform in [0, n - m].
    The window is moved to column 0; ``seconds`` are re-based to the window's first position
    (seconds since the new start); minute of day, day of week and ``time_known`` travel with their
    positions. The result is padded to the longest kept window.

    Args:
        batch: ``(B, L)`` trajectories (padding a suffix of each row).
        min_keep_fraction: minimum kept fraction of real positions, in (0, 1].
        generator: CPU generator.

    Returns:
        ``(B, L')`` batch, L' <= L; trip ids unchanged.

    Raises:
        ValueError: ``min_keep_fraction`` outside (0, 1].
    """
    if not 0.0 < min_keep_fraction <= 1.0:
        raise ValueError(f"min_keep_fraction must be in (0, 1], got {min_keep_fraction}")
    device = batch.roads.device
    n = batch.lengths.cpu()  # (B,)
    b, length = batch.roads.shape
    low = torch.ceil(n.double() * min_keep_fraction - 1e-9).long().clamp(min=1).minimum(n)
    u_keep = torch.rand(b, generator=generator, dtype=torch.float64)
    u_start = torch.rand(b, generator=generator, dtype=torch.float64)
    keep = (low + torch.floor(u_keep * (n - low + 1).double()).long()).minimum(n)
    start = torch.floor(u_start * (n - keep + 1).double()).long().minimum(n - keep)
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


def shift_times(batch: TrajectoryBatch, max_shift_minutes: int, generator: torch.Generator) -> TrajectoryBatch:
    """Temporal shifting: move each trajectory's clock by a random whole number of minutes.

    One offset o per trajectory, uniform in [-max_shift_minutes, max_shift_minutes]; at every real
    position minute_of_day becomes (minute_of_day + o) mod 1440 and day_of_week moves by the
    number of midnights crossed (mod 7). ``seconds`` (times since the trip start, hence the
    intervals) are unchanged; padded positions stay 0.

    Args:
        batch: ``(B, L)`` trajectories.
        max_shift_minutes: largest absolute offset in minutes, >= 0.
        generator: CPU generator.

    Returns:
        ``(B, L)`` batch with shifted ``minute_of_day`` and ``day_of_week``.

    Raises:
        ValueError: ``max_shift_minutes`` < 0.
    """
    if max_shift_minutes < 0:
        raise ValueError(f"max_shift_minutes must be >= 0, got {max_shift_minutes}")
    b = batch.roads.shape[0]
    offset = torch.randint(-max_shift_minutes, max_shift_minutes + 1, (b, 1), generator=generator)
    offset = offset.to(batch.minute_of_day.device)
    total = batch.minute_of_day + offset
    minute = torch.remainder(total, MINUTES_PER_DAY)
    day = torch.remainder(batch.day_of_week + torch.div(total, MINUTES_PER_DAY, rounding_mode="floor"),
                          DAYS_PER_WEEK)
    pad = batch.padding_mask
    return replace(batch, minute_of_day=minute.masked_fill(pad, 0), day_of_week=day.masked_fill(pad, 0))


__all__ = ["trim_trajectories", "shift_times"]
