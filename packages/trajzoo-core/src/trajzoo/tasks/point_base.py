"""Point-level tasks of raw-GPS models, expressed as masked-modality recovery.

TransferTraj (arXiv 2505.12672, "unified task-transferable input-output scheme") poses every
downstream task as recovering a hidden modality of some points: a task sets the spatial or
temporal mask of a :class:`~trajzoo.data.points.PointBatch` (its *query*), the model predicts
every point's x, y and time from ``query.visible()``, and the task reads the truth from the query
itself at the masked positions. Labels therefore never travel separately from the batch.

Model contract (used by :mod:`trajzoo.training.point_tasks`):
``model.predict(query.visible()) -> {"xy": (B, L, 2) metres relative to the first point,
"t_minutes": (B, L) minutes since the first point}``.

Reference rows: :func:`interpolation_baseline` scores the linear-interpolation baseline
(:func:`interpolate_positions`: time-linear between kept points, constant velocity after the last
one) of TP and TR with the same metrics dict as ``evaluate_point_task``, so the learnt part of a
model's error is visible next to it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trajzoo.qc import stage_counts

if TYPE_CHECKING:  # imported where they are used: building the Snakemake DAG loads this module
    from torch import Tensor

    from trajzoo.data.points import PointBatch

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
        import torch.nn.functional as F
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
    import torch
    return batch.lengths.to(torch.long) - 1


def positions(batch: PointBatch) -> Tensor:
    """``(B, L)`` int64 point index along each trajectory."""
    import torch
    return torch.arange(batch.max_len, device=batch.xy.device).expand(batch.batch_size, -1)


def interpolate_positions(query: PointBatch) -> Tensor:
    """Linear-interpolation baseline positions of every point of a query, from visible values only.

    A point whose x, y are hidden gets, from the visible points a (the last visible before it)
    and b (the first visible after it), the position linear in TIME between them
    ``xy_a + (t_i - t_a) / (t_b - t_a) (xy_b - xy_a)``; after the last visible point, the linear
    extrapolation at the velocity of the last two visible points
    ``xy_a + (t_i - t_a) (xy_a - xy_a') / (t_a - t_a')`` (a' the visible point before a; the
    position of a is carried when there is no a' or no time elapsed). Time is
    ``t_minutes`` when the query hides no time, else the point index. Visible points keep their
    position; padding is 0.

    Args:
        query: ``(B, L)`` query batch (its hidden values are not read: ``query.visible()``).

    Returns:
        ``(B, L, 2)`` float64 metres relative to the first point.
    """
    import torch
    v = query.visible()
    b, l = v.padding_mask.shape
    xy = v.xy.double()
    vis = ~v.spatial_mask & ~v.padding_mask
    idx = torch.arange(l, device=xy.device).expand(b, l)
    t = idx.double() if bool(v.temporal_mask.any()) else v.t_minutes.double()
    prev = torch.where(vis, idx, torch.full_like(idx, -1)).cummax(dim=1).values  # last visible <= i
    nxt = torch.where(vis, idx, torch.full_like(idx, l)).flip(1).cummin(dim=1).values.flip(1)  # first visible >= i
    prev_strict = torch.cat([torch.full_like(idx[:, :1], -1), prev[:, :-1]], dim=1)  # last visible < i
    a = prev.clamp(min=0)
    a2 = prev_strict.gather(1, a)  # the visible point before a
    has_a, has_b, has_a2 = prev >= 0, nxt < l, a2 >= 0
    bb, a2c = nxt.clamp(max=l - 1), a2.clamp(min=0)

    def at(x, i):
        return x.gather(1, i) if x.dim() == 2 else x.gather(1, i.unsqueeze(-1).expand(-1, -1, x.shape[-1]))

    xa, xb, xa2 = at(xy, a), at(xy, bb), at(xy, a2c)
    ta, tb, ta2 = at(t, a), at(t, bb), at(t, a2c)
    span = tb - ta
    w = torch.where(span > 0, (t - ta) / span.where(span > 0, torch.ones_like(span)), torch.full_like(span, 0.5))
    inside = xa + w.unsqueeze(-1) * (xb - xa)
    dt = ta - ta2
    ok = has_a2 & (dt > 0)
    vel = torch.where(ok.unsqueeze(-1), (xa - xa2) / dt.where(ok, torch.ones_like(dt)).unsqueeze(-1), torch.zeros_like(xa))
    beyond = xa + (t - ta).unsqueeze(-1) * vel
    out = torch.where((has_a & has_b).unsqueeze(-1), inside, torch.where(has_a.unsqueeze(-1), beyond, xb))
    out = torch.where(vis.unsqueeze(-1), xy, out)
    return out.masked_fill(v.padding_mask.unsqueeze(-1), 0.0)


def interpolation_baseline(task: PointTask, rows: list[dict], city: str, max_len: int = 128,
                           batch_size: int = 256) -> dict:
    """Score the linear-interpolation baseline (:func:`interpolate_positions`) on a point task
    that recovers x, y (TP: constant-velocity extrapolation of the last visible points; TR:
    time-linear interpolation between the kept points), so that the learnt part of a model's
    TP / TR error is visible next to it.

    Args:
        task: a :class:`PointTask` with ``recovered == "xy"`` (TP, TR).
        rows: ELIGIBLE point rows (:func:`trajzoo.data.points.point_rows`, filter with
            ``task.eligible``). city: city key. max_len: points kept per trajectory by the
            collate (as for the model). batch_size: trajectories per collated batch.

    Returns:
        The dict of :func:`trajzoo.training.point_tasks.evaluate_point_task`:
        ``{**task.metrics(y_true, y_pred), "n": trajectories, "n_predictions": recovered points}``
        (MAE, RMSE in metres for TP and TR).

    Raises:
        ValueError: the task does not recover x, y, or no rows.
    """
    import torch
    from trajzoo.data.points import iterate_point_batches

    if task.recovered != "xy":
        raise ValueError(f"interpolation_baseline: task {task.name} recovers {task.recovered}, not xy")
    if not rows:
        raise ValueError(f"task {task.name} on {city}: no trajectory to evaluate")
    truths, preds = [], []
    for batch in iterate_point_batches(rows, batch_size, city, max_len):
        query = task.make_query(batch)
        y_true, y_pred = task.select(query, {"xy": interpolate_positions(query).to(query.xy.dtype)})
        truths.append(y_true.double())
        preds.append(y_pred.double())
    y_true = torch.cat(truths).numpy()
    y_pred = torch.cat(preds).numpy()
    out = dict(task.metrics(y_true, y_pred))
    out.update(n=len(rows), n_predictions=int(y_true.shape[0]))
    return out
