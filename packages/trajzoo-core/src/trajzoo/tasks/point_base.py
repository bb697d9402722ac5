"""Point-level tasks of raw-GPS models, expressed as masked-modality recovery.

TransferTraj (arXiv 2505.12672, "unified task-transferable input-output scheme") poses every
downstream task as recovering a hidden modality of some points: a task sets the spatial or
temporal mask of a :class:`~trajzoo.data.points.PointBatch` (its *query*), the model predicts
every point's x, y and time from ``query.visible()``, and the task reads the truth from the query
itself at the masked positions. Labels therefore never travel separately from the batch.

Model contract (used by :mod:`trajzoo.training.point_tasks`):
``model.predict(query.visible()) -> {"xy": (B, L, 2) metres relative to the first point,
"t_minutes": (B, L) minutes since the first point}``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from trajzoo.data.points import PointBatch
from trajzoo.qc import stage_counts

#: Scale of the fine-tuning loss: x, y are compared in km (metres / 1000), times in minutes.
METRES_PER_KM = 1000.0


class PointTask(ABC):
    """A point-level task: eligibility, query masks, truth/prediction selection, loss, metrics.

    Subclasses set ``name``, ``metric_names``, ``recovered`` (``"xy"`` or ``"t_minutes"``) and
    ``min_points`` (fewest points a trip needs), and implement :meth:`make_query`.
    """

    name: str = ""
    metric_names: tuple[str, ...] = ()
    recovered: str = "xy"
    min_points: int = 2
    #: task kind of :data:`trajzoo.registry.TASK_KINDS`: GPS fixes
    input_kind: str = "point"
    #: collate whole trips (True: the task reads the real last point, e.g. OD-TTE), else the
    #: first ``max_len`` points as in pretraining
    whole_trip: bool = False

    def eligible(self, rows: list[dict]) -> tuple[list[dict], pd.DataFrame]:
        """Keep the trips with at least ``min_points`` points.

        Args:
            rows: point rows (:func:`trajzoo.data.points.point_rows`).

        Returns:
            ``(kept_rows, qc)``; qc is stage ``task:<name>`` (:func:`trajzoo.qc.stage_counts`),
            rejections ``too_few_points_for_<name>``.
        """
        ok = [len(r["x"]) >= self.min_points for r in rows]
        kept = [r for r, k in zip(rows, ok) if k]
        n_bad = len(rows) - len(kept)
        qc = stage_counts(f"task:{self.name}", len(rows), len(kept), pd.Series([f"too_few_points_for_{self.name}"] * n_bad,
                                                                                dtype=object))
        return kept, qc

    @abstractmethod
    def make_query(self, batch: PointBatch) -> PointBatch:
        """The batch the model sees (with this task's masks set), built from a collated batch."""

    def _mask(self, query: PointBatch) -> Tensor:
        return query.spatial_mask if self.recovered == "xy" else query.temporal_mask

    def select(self, query: PointBatch, pred: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Truth and prediction at the hidden positions of the recovered modality.

        Args:
            query: output of :meth:`make_query` (holds the true values).
            pred: model output, ``pred[self.recovered]`` of shape ``(B, L, 2)`` (xy, metres) or
                ``(B, L)`` (t_minutes).

        Returns:
            ``(y_true, y_pred)``, each ``(n, 2)`` metres for xy or ``(n, 1)`` minutes for time,
            n = number of hidden positions, in row-major (trip, point) order.

        Raises:
            KeyError: the prediction lacks ``self.recovered``.
            ValueError: its shape differs from the query's.
        """
        mask = self._mask(query)
        truth = getattr(query, self.recovered)
        out = pred[self.recovered]
        if tuple(out.shape) != tuple(truth.shape):
            raise ValueError(f"{self.name}: prediction {self.recovered} has shape {tuple(out.shape)}, "
                             f"expected {tuple(truth.shape)}")
        if self.recovered == "xy":
            return truth[mask], out[mask]
        return truth[mask].unsqueeze(-1), out[mask].unsqueeze(-1)

    def loss(self, query: PointBatch, pred: dict[str, Tensor]) -> Tensor:
        """Fine-tuning loss: MSE at the hidden positions, x, y in km (metres / 1000) or time in
        minutes; a scalar tensor (0 when nothing is hidden)."""
        y_true, y_pred = self.select(query, pred)
        if y_true.numel() == 0:
            return y_pred.sum() * 0.0
        scale = METRES_PER_KM if self.recovered == "xy" else 1.0
        return F.mse_loss(y_pred / scale, y_true.to(y_pred.dtype) / scale)

    @abstractmethod
    def metrics(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        """Score pooled ``(n, k)`` predictions (from :meth:`select`) against the truth."""


def last_index(batch: PointBatch) -> Tensor:
    """``(B,)`` index of each trajectory's last real point (``lengths - 1``)."""
    return batch.lengths.to(torch.long) - 1


def positions(batch: PointBatch) -> Tensor:
    """``(B, L)`` int64 point index along each trajectory."""
    return torch.arange(batch.max_len, device=batch.xy.device).expand(batch.batch_size, -1)
