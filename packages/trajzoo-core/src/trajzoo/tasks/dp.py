"""Destination prediction (DP): hide the last road segments, predict the final segment id."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from trajzoo.qc import stage_counts
from trajzoo.tasks.base import Task, TaskData, split_rows

if TYPE_CHECKING:  # imported where they are used: building the Snakemake DAG loads this module
    from trajzoo.data.city import CityData


class DestinationPrediction(Task):
    """DP: input = the trip without its last ``hidden_segments`` (4) road segments (with their
    times); label = the trip's final road segment id (one of N classes). Trips with fewer than
    ``hidden_segments + min_prefix`` segments are ineligible (``too_short_for_dp``).
    Metrics: Micro-F1, Macro-F1, Recall@5, and Acc@1, Acc@5 (SMARTraj2's "destination road
    prediction"; Acc@k is Recall@k under another name, :func:`trajzoo.metrics.top_k_accuracy`).
    """

    name = "dp"
    kind = "classification"
    metric_names = ("Micro-F1", "Macro-F1", "Recall@5", "Acc@1", "Acc@5")

    def __init__(self, hidden_segments: int = 4, min_prefix: int = 2):
        self.hidden_segments = hidden_segments
        self.min_prefix = min_prefix

    def prepare(self, city: CityData) -> TaskData:
        """Input prefixes (trip minus its last ``hidden_segments`` segments) and final segment ids."""
        trips = city.trips
        n_seg = np.array([len(r) for r in trips["roads"]])
        ok = n_seg >= self.hidden_segments + self.min_prefix
        qc = stage_counts("task:dp", len(trips), int(ok.sum()), np.array(["too_short_for_dp"] * int((~ok).sum())))
        kept = trips[ok]
        labels = np.array([int(r[-1]) for r in kept["roads"]], dtype=np.int64)
        rows, labs = split_rows(kept, labels, prefix_len=n_seg[ok] - self.hidden_segments)
        return TaskData(rows, labs, city.graph.num_segments, qc)

    def metrics(self, y_true, outputs):
        """Micro-F1, Macro-F1, Recall@5, Acc@1, Acc@5 of ``(n, N)`` segment scores."""
        from trajzoo.metrics import classification_metrics
        return classification_metrics(y_true, outputs, ks=(5,), acc_ks=(1, 5))
