"""Helpers shared by the baseline models: strict config parsing and batch validation (pooling,
position encodings and masks come from :mod:`trajzoo.nn`)."""
from __future__ import annotations

from typing import TypeVar

from torch import Tensor

from trajzoo.config import strict_from_dict
from trajzoo.data.batch import TrajectoryBatch

__all__ = ["strict_from_dict", "validate_batch"]

T = TypeVar("T")

BATCH_FIELDS = ("padding_mask", "seconds", "day_of_week", "minute_of_day", "time_known")


def validate_batch(batch: TrajectoryBatch, num_segments: int, road_mask: Tensor | None = None) -> None:
    """Check a :class:`TrajectoryBatch` against an encoder built for ``num_segments`` roads.

    Args:
        batch: ``(B, L)`` trajectories.
        num_segments: N, the encoder's number of road segments.
        road_mask: optional ``(B, L)`` bool mask that must match the batch.

    Raises:
        ValueError: a field whose shape is not ``(B, L)``; a real (non-padded) road id outside
            ``[0, N)``; a trajectory with no real position; a mask on a padded position.
    """
    shape = batch.roads.shape
    if batch.roads.dim() != 2:
        raise ValueError(f"batch.roads must be (B, L), got {tuple(shape)}")
    for name in BATCH_FIELDS:
        if getattr(batch, name).shape != shape:
            raise ValueError(f"batch.{name} has shape {tuple(getattr(batch, name).shape)}, roads {tuple(shape)}")
    if road_mask is not None:
        if road_mask.shape != shape or road_mask.dtype != batch.padding_mask.dtype:
            raise ValueError(f"road_mask must be a {tuple(shape)} bool tensor, got {road_mask.dtype} "
                             f"{tuple(road_mask.shape)}")
        if bool((road_mask & batch.padding_mask).any()):
            raise ValueError("road_mask is True at a padded position")
    if batch.roads.numel():
        real = batch.roads[~batch.padding_mask]
        if real.numel() and (real.min() < 0 or real.max() >= num_segments):
            raise ValueError(f"batch.roads holds ids outside [0, {num_segments}) at real positions")
        if bool((batch.lengths < 1).any()):
            raise ValueError("every trajectory must have at least one real position")
