"""Location-level (road-level) downstream tasks (task kind ``location``): TrajGANR section 4.1.

A location task labels task locations (:mod:`trajzoo.locations`) and scores a head's
predictions there. Labels are computed from data that no model input contains: from the trips
of the city's TEST split only, while every model input (pretraining and the trajectories
aggregated at fine-tuning) comes from the TRAIN split (:func:`trajzoo.locations.train_view`).
The head is trained on the locations of the ``train`` location split, early-stopped on ``val``
and scored on ``test`` (:func:`trajzoo.locations.split_locations`, by road segment).

Every task reports, per location split, how many locations got a label and how many were
excluded, with the reason (stage ``task:<name>``).

Tasks (TrajGANR Tables 2-5):

* ``traffic_speed``: mean observed speed (m/s) of the test trips at the location: per trip,
  the speed of the fix pair whose path segment passes the location; MAE, RMSE, R^2.
* ``road_popularity``: ordinal class (quantile bins, ``n_classes``) of the number of test
  trips passing the location; macro F1, macro AUPRC.
* ``aoi_function``: distribution of POI categories within the AOI radius; L1, cosine.
* ``hard_braking``: rate of hard-braking events of the test trips at the location: the share of
  the accelerations at the two fixes around the location that are below ``-threshold_mps2``;
  MAE, RMSE, R^2.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trajzoo.locations import enclosing_pair, fix_kinematics
from trajzoo.qc import stage_counts

if TYPE_CHECKING:  # imported where they are used: building the Snakemake DAG loads this module
    from torch import Tensor

LOCATION_SPLITS = ("train", "val", "test")


@dataclass
class LocationTaskData:
    """Labels of one location task.

    Attributes:
        index: per location split, ``(n,)`` int64 row indices into the locations table.
        labels: per split, ``(n,)`` float (regression), int64 (classes) or ``(n, C)`` float
            distributions.
        n_outputs: head outputs (1, C classes, or C categories).
        qc: stage ``task:<name>`` accounting per location split (column ``split``).
    """

    index: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    n_outputs: int
    qc: pd.DataFrame


class LocationTask(ABC):
    """A location-level task. Subclasses set ``name``, ``kind`` (``regression``,
    ``classification`` or ``distribution``), ``metric_names`` and implement :meth:`raw_labels`."""

    name: str = ""
    kind: str = "regression"
    #: task kind of :data:`trajzoo.registry.TASK_KINDS`: task locations on the road network
    input_kind: str = "location"
    metric_names: tuple[str, ...] = ()

    @abstractmethod
    def raw_labels(self, locations, test_rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, reasons)`` for every location: labels ``(n,)`` or ``(n, C)``; reasons
        ``(n,)`` object, None where the location has a label, else the exclusion reason."""

    def finalise(self, labels: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
        """Turn the raw labels of each split into the head's targets; returns them and n_outputs."""
        return labels, 1

    def prepare(self, locations, test_rows: list[dict]) -> LocationTaskData:
        """Labels per location split from the TEST trips ``test_rows`` only.

        Args:
            locations: :class:`trajzoo.locations.LocationView`.
            test_rows: point rows of the city's test split.

        Returns:
            :class:`LocationTaskData`.

        Raises:
            ValueError: a test row is not of the test split (``split`` key other than test).
        """
        bad = [r["trip_id"] for r in test_rows if r.get("split", "test") != "test"]
        if bad:
            raise ValueError(f"task {self.name}: labels must come from test trips only; got {bad[:3]}")
        labels, reasons = self.raw_labels(locations, test_rows)
        split = locations.table["location_split"].to_numpy()
        index, labs, qcs = {}, {}, []
        for s in LOCATION_SPLITS:
            in_split = split == s
            ok = in_split & pd.isna(reasons)
            index[s] = np.flatnonzero(ok)
            labs[s] = labels[ok]
            qcs.append(stage_counts(f"task:{self.name}", int(in_split.sum()), int(ok.sum()),
                                    pd.Series(reasons[in_split & ~pd.isna(reasons)], dtype=object)).assign(split=s))
        labs, n_out = self.finalise(labs)
        return LocationTaskData(index, labs, n_out, pd.concat(qcs, ignore_index=True))

    # head training: loss on head outputs (n, n_outputs); targets as from finalise
    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        """Training loss of the head (regression: MSE on standardised targets)."""
        import torch.nn.functional as F
        return F.mse_loss(outputs.squeeze(-1), target.float())

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """What :meth:`metrics` scores, from the head's outputs."""
        return outputs[:, 0]

    @abstractmethod
    def metrics(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        """Score predictions against labels."""


def _passes(locations, test_rows: list[dict]):
    """Per location, the (test row, fix-pair index k) of every test trip associated with it."""
    rows = {r["trip_id"]: r for r in test_rows}
    assoc = locations.trips[(locations.trips["split"] == "test") & locations.trips["trip_id"].isin(list(rows))]
    xy = locations.table[["x", "y"]].to_numpy(float)
    out = [[] for _ in range(len(locations.table))]
    for loc, trip in zip(assoc["location_id"].to_numpy(), assoc["trip_id"].to_numpy()):
        r = rows[trip]
        k, _ = enclosing_pair(r, xy[loc, 0], xy[loc, 1])
        out[int(loc)].append((r, k))
    return out


class _RegressionLocationTask(LocationTask):
    kind = "regression"
    metric_names = ("MAE", "RMSE", "R2")

    def finalise(self, labels):
        return {s: np.asarray(v, dtype=np.float64) for s, v in labels.items()}, 1

    def metrics(self, y_true, y_pred):
        from trajzoo.metrics import r2_regression_metrics
        return r2_regression_metrics(y_true, y_pred)


class TrafficSpeed(_RegressionLocationTask):
    """Mean observed speed (m/s) at the location, from the test trips (MAE, RMSE, R^2)."""

    name = "traffic_speed"

    def raw_labels(self, locations, test_rows):
        labels = np.full(len(locations.table), np.nan)
        reasons = np.full(len(locations.table), None, dtype=object)
        cache = {}
        for i, passes in enumerate(_passes(locations, test_rows)):
            speeds = []
            for r, k in passes:
                v = cache.setdefault(r["trip_id"], fix_kinematics(r)[0])
                if k < len(v) and np.isfinite(v[k]):
                    speeds.append(v[k])
            if not passes:
                reasons[i] = "no_test_trip"
            elif not speeds:
                reasons[i] = "no_speed_observation"
            else:
                labels[i] = float(np.mean(speeds))
        return labels, reasons


class HardBraking(_RegressionLocationTask):
    """Rate (share, in [0, 1]) of hard-braking events of the test trips at the location: the
    accelerations at the fixes k and k+1 around the location below ``-threshold_mps2``
    (MAE, RMSE, R^2).

    Args:
        threshold_mps2: deceleration threshold in m/s^2 (> 0).

    Raises:
        ValueError: threshold <= 0.
    """

    name = "hard_braking"

    def __init__(self, threshold_mps2: float = 1.5):
        if not threshold_mps2 > 0:
            raise ValueError(f"hard_braking: threshold_mps2 must be > 0, got {threshold_mps2}")
        self.threshold_mps2 = float(threshold_mps2)

    def raw_labels(self, locations, test_rows):
        labels = np.full(len(locations.table), np.nan)
        reasons = np.full(len(locations.table), None, dtype=object)
        cache = {}
        for i, passes in enumerate(_passes(locations, test_rows)):
            acc = []
            for r, k in passes:
                a = cache.setdefault(r["trip_id"], fix_kinematics(r)[1])
                acc += [a[j] for j in (k, k + 1) if j < len(a) and np.isfinite(a[j])]
            if not passes:
                reasons[i] = "no_test_trip"
            elif not acc:
                reasons[i] = "no_acceleration_observation"
            else:
                labels[i] = float(np.mean(np.asarray(acc) < -self.threshold_mps2))
        return labels, reasons


class RoadPopularity(LocationTask):
    """Ordinal popularity class of the location: the number of test trips passing it, cut into
    ``n_classes`` quantile bins (edges from the labelled TRAIN locations' counts, so the class of
    a test location never shapes the bins); macro F1 and macro AUPRC (one-vs-rest average
    precision).

    Args:
        n_classes: number of quantile bins (>= 2).

    Raises:
        ValueError: n_classes < 2.
    """

    name = "road_popularity"
    kind = "classification"
    metric_names = ("F1", "AUPRC")

    def __init__(self, n_classes: int = 3):
        if int(n_classes) < 2:
            raise ValueError(f"road_popularity: n_classes must be >= 2, got {n_classes}")
        self.n_classes = int(n_classes)
        self.edges: np.ndarray | None = None

    def raw_labels(self, locations, test_rows):
        counts = np.array([len(p) for p in _passes(locations, test_rows)], dtype=np.float64)
        reasons = np.where(counts > 0, None, "no_test_trip").astype(object)
        return counts, reasons

    def finalise(self, labels):
        train = labels["train"]
        qs = np.quantile(train, np.linspace(0, 1, self.n_classes + 1)[1:-1]) if len(train) else np.zeros(0)
        self.edges = np.asarray(qs, dtype=np.float64)
        return {s: np.searchsorted(self.edges, v, side="right").astype(np.int64) for s, v in labels.items()}, \
            self.n_classes

    def loss(self, outputs, target):
        import torch.nn.functional as F
        return F.cross_entropy(outputs, target.long())

    def predictions(self, outputs):
        return outputs

    def metrics(self, y_true, y_pred):
        from trajzoo.metrics import ordinal_classification_metrics
        return ordinal_classification_metrics(y_true, y_pred)


class AOIFunction(LocationTask):
    """Distribution of POI categories within the AOI radius of the location (L1, cosine). The
    head outputs logits; its prediction is their softmax; the loss is the cross-entropy with the
    true distribution. Locations without any POI within the radius are excluded
    (``no_poi_within_radius``); a city without POI data excludes every location (``no_poi_data``)."""

    name = "aoi_function"
    kind = "distribution"
    metric_names = ("L1", "cosine")

    def raw_labels(self, locations, test_rows):
        n = len(locations.table)
        if locations.poi_counts is None:
            return np.zeros((n, 1)), np.full(n, "no_poi_data", dtype=object)
        counts = np.asarray(locations.poi_counts, dtype=np.float64)
        total = counts.sum(axis=1, keepdims=True)
        dist = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
        reasons = np.where(total[:, 0] > 0, None, "no_poi_within_radius").astype(object)
        return dist, reasons

    def finalise(self, labels):
        return labels, int(next(iter(labels.values())).shape[1])

    def loss(self, outputs, target):
        import torch.nn.functional as F
        return -(target.float() * F.log_softmax(outputs, dim=-1)).sum(-1).mean()

    def predictions(self, outputs):
        z = outputs - outputs.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def metrics(self, y_true, y_pred):
        from trajzoo.metrics import distribution_metrics
        return distribution_metrics(y_true, y_pred)


def tensor(x: np.ndarray) -> Tensor:
    """``torch.as_tensor`` of a label array (float32 or int64)."""
    import torch
    return torch.as_tensor(x, dtype=torch.long if np.asarray(x).dtype.kind in "iu" else torch.float32)
