"""Trajectory prediction (TP, TransferTraj arXiv 2505.12672, Section "Downstream tasks"): predict
the positions of a trajectory's last points from the earlier ones."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from trajzoo.tasks.point_base import PointTask, last_index, positions

if TYPE_CHECKING:  # imported where they are used: building the Snakemake DAG loads this module
    from trajzoo.data.points import PointBatch


class TrajectoryPrediction(PointTask):
    """TP: hide x, y of the last ``n_predict`` (5) points; their times stay visible (the model is
    told *when* to predict). Trips need ``n_predict + min_visible`` (5 + 2 = 7) points.
    Metrics: MAE and RMSE (metres) of the Euclidean error, pooled over every predicted point
    (:func:`trajzoo.metrics.displacement_metrics`).
    """

    name = "tp"
    metric_names = ("MAE", "RMSE")
    recovered = "xy"

    def __init__(self, n_predict: int = 5, min_visible: int = 2):
        if n_predict < 1 or min_visible < 1:
            raise ValueError(f"tp: n_predict and min_visible must be >= 1, got {n_predict}, {min_visible}")
        self.n_predict = n_predict
        self.min_visible = min_visible
        self.min_points = n_predict + min_visible

    def make_query(self, batch: PointBatch) -> PointBatch:
        """Spatial mask True at positions ``lengths - n_predict .. lengths - 1``; no temporal mask.

        Raises:
            ValueError: a trajectory in the batch has fewer than ``min_points`` points.
        """
        import torch
        if (batch.lengths < self.min_points).any():
            raise ValueError(f"tp: a trajectory has fewer than {self.min_points} points (filter with eligible())")
        pos = positions(batch)
        last = last_index(batch).unsqueeze(1)
        spatial = (pos > last - self.n_predict) & (pos <= last)
        return batch.with_masks(spatial, torch.zeros_like(spatial))

    def metrics(self, y_true, y_pred):
        """MAE, RMSE in metres of ``(n, 2)`` points."""
        from trajzoo.metrics import displacement_metrics
        return displacement_metrics(np.asarray(y_true), np.asarray(y_pred))
