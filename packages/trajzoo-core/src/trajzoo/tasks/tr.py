"""Trajectory recovery (TR, TransferTraj arXiv 2505.12672, Section "Downstream tasks"): recover
the points dropped from a sparsely sampled trajectory."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from trajzoo.tasks.point_base import PointTask, last_index, positions

if TYPE_CHECKING:  # imported where they are used: building the Snakemake DAG loads this module
    from trajzoo.data.points import PointBatch


class TrajectoryRecovery(PointTask):
    """TR: keep points with index % ``keep_every`` (8) == 0 and the last point visible, hide x, y of
    all others (their times stay visible): the sparse trajectory keeps its end, so every hidden
    point lies between two kept ones (recovery, not prediction). Trips need ``keep_every + 1`` (9)
    points. Metrics: MAE and RMSE (metres) of the Euclidean error, pooled over every
    recovered point (:func:`trajzoo.metrics.displacement_metrics`).
    """

    name = "tr"
    metric_names = ("MAE", "RMSE")
    recovered = "xy"

    def __init__(self, keep_every: int = 8):
        if keep_every < 2:
            raise ValueError(f"tr: keep_every must be >= 2, got {keep_every}")
        self.keep_every = keep_every
        self.min_points = keep_every + 1

    def make_query(self, batch: PointBatch) -> PointBatch:
        """Spatial mask True at real positions whose index is not a multiple of ``keep_every``,
        except the last real point (always kept)."""
        import torch
        pos = positions(batch)
        spatial = (pos % self.keep_every != 0) & (pos != last_index(batch).unsqueeze(1)) & ~batch.padding_mask
        return batch.with_masks(spatial, torch.zeros_like(spatial))

    def metrics(self, y_true, y_pred):
        """MAE, RMSE in metres of ``(n, 2)`` points."""
        from trajzoo.metrics import displacement_metrics
        return displacement_metrics(np.asarray(y_true), np.asarray(y_pred))
