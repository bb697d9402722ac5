"""Checks of a road-sequence batch (:class:`trajzoo.data.batch.TrajectoryBatch`) against an
encoder built for N road segments, shared by the road-id models (MetaTRL, START,
``transformer-mlm``, ``node2vec``)."""
from __future__ import annotations

from torch import Tensor

from trajzoo.data.batch import TrajectoryBatch

BATCH_FIELDS = ("padding_mask", "seconds", "day_of_week", "minute_of_day", "time_known")
"""The per-position fields of a batch that must have the shape ``(B, L)`` of ``roads``."""


def validate_road_batch(batch: TrajectoryBatch, num_segments: int, road_mask: Tensor | None = None,
                        ids_at_padding: bool = False) -> None:
    """Check a :class:`TrajectoryBatch` against an encoder built for ``num_segments`` roads.

    Args:
        batch: ``(B, L)`` trajectories.
        num_segments: N, the encoder's number of road segments.
        road_mask: optional ``(B, L)`` bool mask (True = road replaced by [MASK]) that must match
            the batch and never be True at padding.
        ids_at_padding: also require the road ids at padded positions to lie in ``[0, N)`` (for an
            encoder that looks every position up before masking, as MetaTRL's does).

    Raises:
        ValueError: ``roads`` not ``(B, L)``; a field whose shape is not ``(B, L)``; a bad
            ``road_mask``; a road id outside ``[0, N)`` (at real positions, or anywhere with
            ``ids_at_padding``); a trajectory with no real position.
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
        ids = batch.roads if ids_at_padding else batch.roads[~batch.padding_mask]
        where = "" if ids_at_padding else " at real positions"
        if ids.numel() and (ids.min() < 0 or ids.max() >= num_segments):
            raise ValueError(f"batch.roads holds ids outside [0, {num_segments}){where}")
        if bool((batch.lengths < 1).any()):
            raise ValueError("every trajectory must have at least one real position")
