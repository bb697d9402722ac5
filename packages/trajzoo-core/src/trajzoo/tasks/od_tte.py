"""Origin-destination travel time estimation (OD-TTE, TransferTraj arXiv 2505.12672, Section
"Downstream tasks"): from the origin, the destination and the departure time only."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from trajzoo.tasks.point_base import PointTask, last_index

if TYPE_CHECKING:  # imported where they are used: building the Snakemake DAG loads this module
    from trajzoo.data.points import PointBatch


class ODTravelTime(PointTask):
    """OD-TTE: the query is a 2-point trajectory, origin (x = y = 0, t = 0, departure time and
    context visible) and destination (x, y and context visible, time hidden); the label is the
    destination's ``t_minutes``, the travel time in minutes. The destination is the last point of
    the COLLATED trip, i.e. the trip's last point unless :func:`~trajzoo.data.points.collate_points`
    truncated it to ``max_len`` (use ``max_len >=`` the ingest ``max_points`` for evaluation).
    Trips need 2 points (the ingest filters guarantee increasing times, so the travel time is
    > 0 and MAPE is defined). Metrics: MAE, MAPE (fraction), RMSE in minutes
    (:func:`trajzoo.metrics.regression_metrics`).
    """

    name = "od_tte"
    metric_names = ("MAE", "MAPE", "RMSE")
    recovered = "t_minutes"
    min_points = 2
    whole_trip = True

    def make_query(self, batch: PointBatch) -> PointBatch:
        """A ``(B, 2)`` batch of origin + destination with the destination's time hidden.

        Raises:
            ValueError: a trajectory in the batch has fewer than 2 points.
        """
        import torch
        if (batch.lengths < 2).any():
            raise ValueError("od_tte: a trajectory has fewer than 2 points (filter with eligible())")
        b = batch.batch_size
        idx = torch.stack([torch.zeros_like(batch.lengths), last_index(batch)], dim=1).to(torch.long)  # (B, 2)

        def pick(t):
            if t.dim() == 2:
                return t.gather(1, idx)
            return t.gather(1, idx.unsqueeze(-1).expand(-1, -1, t.shape[-1]))

        per_point = ("xy", "t_minutes", "minute_of_day", "day_of_week", "road_class", "road_lanes", "road_maxspeed",
                     "poi_category", "context", "has_context")
        no = torch.zeros((b, 2), dtype=torch.bool, device=batch.xy.device)
        temporal = no.clone()
        temporal[:, 1] = True
        return replace(batch, **{f: pick(getattr(batch, f)) for f in per_point},
                       spatial_mask=no.clone(), temporal_mask=temporal, padding_mask=no.clone(),
                       lengths=torch.full_like(batch.lengths, 2))

    def metrics(self, y_true, y_pred):
        """MAE, MAPE, RMSE (minutes) of ``(n, 1)`` or ``(n,)`` travel times."""
        from trajzoo.metrics import regression_metrics
        return regression_metrics(np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1))
