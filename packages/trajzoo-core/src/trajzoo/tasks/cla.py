"""Trajectory classification (CLA): which taxi drove the trip, and how it was ordered."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trajzoo.qc import stage_counts
from trajzoo.tasks.base import Task, TaskData, split_rows

if TYPE_CHECKING:  # imported where they are used: building the Snakemake DAG loads this module
    from trajzoo.data.city import CityData


class _LabelClassification(Task):
    kind = "classification"
    column = ""
    ks: tuple[int, ...] = ()

    def eligible(self, labels: pd.Series) -> tuple[np.ndarray, str]:
        """``(mask of trips with a label, rejection reason for the others)``."""
        return labels.notna().to_numpy() & (labels.astype(str) != "").to_numpy(), f"missing_{self.column}"

    def prepare(self, city: CityData) -> TaskData:
        """Class ids (sorted label values) for eligible trips, grouped by split.

        Raises:
            ValueError: the city's trips lack the label column.
        """
        trips = city.trips
        if self.column not in trips:
            raise ValueError(f"task {self.name} needs column {self.column!r}, which city {city.name} lacks")
        raw = trips[self.column]
        ok, reason = self.eligible(raw)
        qc = stage_counts(f"task:{self.name}", len(trips), int(ok.sum()), np.array([reason] * int((~ok).sum())))
        kept = trips[ok]
        names = sorted(kept[self.column].astype(str).unique())
        index = {n: i for i, n in enumerate(names)}
        labels = np.array([index[v] for v in kept[self.column].astype(str)], dtype=np.int64)
        rows, labs = split_rows(kept, labels)
        return TaskData(rows, labs, len(names), qc, class_names=names)

    def metrics(self, y_true, outputs):
        """Micro-F1, Macro-F1 (+ Recall@k for ``ks``) of ``(n, C)`` class scores."""
        from trajzoo.metrics import classification_metrics
        return classification_metrics(y_true, outputs, ks=self.ks)


class TaxiClassification(_LabelClassification):
    """CLA (taxi id): classify the trip's taxi among taxis with at least ``min_trips`` (5) matched
    trips in the city (MetaTRL's Porto label); other trips are ineligible
    (``taxi_fewer_than_<min_trips>_trips``). Metrics: Micro-F1, Macro-F1, Recall@5."""

    name = "cla_taxi"
    column = "taxi_id"
    metric_names = ("Micro-F1", "Macro-F1", "Recall@5")
    ks = (5,)

    def __init__(self, min_trips: int = 5):
        self.min_trips = min_trips

    def eligible(self, labels):
        """Trips whose taxi has at least ``min_trips`` matched trips."""
        counts = labels.map(labels.value_counts())
        return (counts >= self.min_trips).to_numpy(), f"taxi_fewer_than_{self.min_trips}_trips"


class CallTypeClassification(_LabelClassification):
    """CLA (call type): Porto CALL_TYPE A (central dispatch), B (taxi stand), C (street).
    Metrics: Micro-F1, Macro-F1."""

    name = "cla_calltype"
    column = "call_type"
    metric_names = ("Micro-F1", "Macro-F1")
