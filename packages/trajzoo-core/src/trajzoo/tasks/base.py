"""Downstream task interface: a task turns a city's trips into inputs and labels per split,
says what the model may see (its input view), and scores predictions with :mod:`trajzoo.metrics`."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # imported where they are used: building the Snakemake DAG loads this module
    from trajzoo.data.batch import TrajectoryBatch
    from trajzoo.data.city import CityData


SPLITS = ("train", "val", "test")


@dataclass
class TaskData:
    """Inputs and labels of one task on one city.

    Attributes:
        rows: per split, collate-ready trip dicts (see :func:`trajzoo.data.city.trip_rows`).
        labels: per split, ``(n,)`` float minutes (regression) or int class ids (classification).
        n_outputs: 1 for regression, C classes for classification.
        qc: eligibility accounting (see :func:`trajzoo.qc.stage_counts`).
        class_names: class id -> original label (classification only).
    """

    rows: dict[str, list[dict]]
    labels: dict[str, np.ndarray]
    n_outputs: int
    qc: pd.DataFrame
    class_names: list[str] = field(default_factory=list)


class Task(ABC):
    """A downstream task. Subclasses set ``name``, ``kind`` and ``metric_names``."""

    name: str = ""
    kind: str = ""  # "regression" or "classification"
    #: task kind of :data:`trajzoo.registry.TASK_KINDS`: road-segment sequences
    input_kind: str = "road"
    metric_names: tuple[str, ...] = ()

    @abstractmethod
    def prepare(self, city: CityData) -> TaskData:
        """Build inputs and labels for every split of ``city``."""

    def input_view(self, batch: TrajectoryBatch) -> TrajectoryBatch:
        """What the model may see of a batch; by default everything."""
        return batch

    @abstractmethod
    def metrics(self, y_true: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        """Score ``outputs`` (``(n,)`` predictions or ``(n, C)`` scores) against ``y_true``."""


def split_rows(trips: pd.DataFrame, labels: np.ndarray, prefix_len: np.ndarray | None = None
               ) -> tuple[dict[str, list[dict]], dict[str, np.ndarray]]:
    """Group eligible trips (with labels and optional input prefix lengths) by split."""
    from trajzoo.data.city import trip_rows

    rows, labs = {}, {}
    for s in SPLITS:
        sel = (trips["split"] == s).to_numpy()
        rows[s] = trip_rows(trips[sel], None if prefix_len is None else prefix_len[sel])
        labs[s] = labels[sel]
    return rows, labs
