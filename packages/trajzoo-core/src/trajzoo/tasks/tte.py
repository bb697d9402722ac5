"""Travel time estimation (TTE): minutes from the first to the last matched point, from the
road sequence and the departure time only."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from trajzoo.qc import stage_counts
from trajzoo.tasks.base import Task, TaskData, split_rows

if TYPE_CHECKING:  # imported where they are used: building the Snakemake DAG loads this module
    from trajzoo.data.batch import TrajectoryBatch
    from trajzoo.data.city import CityData


class TravelTimeEstimation(Task):
    """TTE: label = (end_time - enter_times[0]) / 60 minutes; metrics MAE, MAPE, RMSE (minutes).

    The input view hides every timestamp after the departure (:func:`hide_times`), so the model
    sees the road segment sequence and the departure time, nothing later. Trips with a travel
    time of 0 are ineligible (MAPE undefined; reason ``zero_travel_time``).
    """

    name = "tte"
    kind = "regression"
    metric_names = ("MAE", "MAPE", "RMSE")

    def prepare(self, city: CityData) -> TaskData:
        """Labels in minutes for every trip with a positive travel time, grouped by split."""
        trips = city.trips
        minutes = np.array([(end - t[0]) / 60.0 for end, t in zip(trips["end_time"], trips["enter_times"])])
        ok = minutes > 0
        qc = stage_counts("task:tte", len(trips), int(ok.sum()), np.array(["zero_travel_time"] * int((~ok).sum())))
        rows, labels = split_rows(trips[ok], minutes[ok])
        return TaskData(rows, labels, 1, qc)

    def input_view(self, batch: TrajectoryBatch) -> TrajectoryBatch:
        """Hide every timestamp but the departure (:func:`hide_times` on positions 1..L-1)."""
        import torch

        from trajzoo.data.batch import hide_times
        hidden = torch.ones_like(batch.padding_mask)
        return hide_times(batch, hidden)

    def metrics(self, y_true, outputs):
        """MAE, MAPE, RMSE (minutes) of ``outputs`` ``(n,)`` or ``(n, 1)``."""
        from trajzoo.metrics import regression_metrics
        return regression_metrics(y_true, np.asarray(outputs).reshape(-1))
