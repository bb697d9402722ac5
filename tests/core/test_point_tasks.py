"""Point tasks TP, TR, OD-TTE: eligibility, query masks, truth/prediction selection, loss, metrics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trajzoo.data.points import collate_points
from trajzoo.registry import get_task
from trajzoo.tasks.od_tte import ODTravelTime
from trajzoo.tasks.tp import TrajectoryPrediction
from trajzoo.tasks.tr import TrajectoryRecovery


def row(trip_id: str, n: int, x0: float = 1000.0, step_s: int = 60) -> dict:
    """A straight trip east at 10 m per point, one point every ``step_s`` seconds."""
    i = np.arange(n)
    return {"trip_id": trip_id, "has_poi": True, "has_road": False,
            "x": x0 + 10.0 * i, "y": np.full(n, 500.0) + i, "t": 1_400_000_000 + step_s * i,
            "minute_of_day": (600 + i) % 1440, "day_of_week": np.full(n, 2), "road_class": np.ones(n, int),
            "road_lanes": np.zeros(n, int), "road_maxspeed": np.zeros(n, int), "poi_category": np.full(n, 3),
            "poi_log_count": np.full(n, 0.5), "road_km": np.zeros(n)}


def batch_of(*lengths):
    return collate_points([row(f"t{k}", n) for k, n in enumerate(lengths)], "toy", max_len=400)


def test_registry_has_point_tasks():
    assert isinstance(get_task("tp"), TrajectoryPrediction)
    assert isinstance(get_task("tr"), TrajectoryRecovery)
    assert isinstance(get_task("od_tte"), ODTravelTime)


def test_eligibility_counts():
    rows = [row("a", 6), row("b", 7), row("c", 8), row("d", 9), row("e", 2), row("f", 1)]
    kept, qc = TrajectoryPrediction().eligible(rows)
    assert [r["trip_id"] for r in kept] == ["b", "c", "d"]
    assert dict(zip(qc["outcome"], qc["count"])) == {"in": 6, "kept": 3, "rejected:too_few_points_for_tp": 3}
    kept, qc = TrajectoryRecovery().eligible(rows)
    assert [r["trip_id"] for r in kept] == ["d"]
    assert qc["stage"].iloc[0] == "task:tr"
    kept, qc = ODTravelTime().eligible(rows)
    assert len(kept) == 5 and dict(zip(qc["outcome"], qc["count"]))["rejected:too_few_points_for_od_tte"] == 1


def test_tp_hides_xy_of_the_last_five_points():
    b = batch_of(7, 10)
    q = TrajectoryPrediction().make_query(b)
    assert q.spatial_mask[0].tolist() == [False, False, True, True, True, True, True, False, False, False]
    assert q.spatial_mask[1].tolist() == [False] * 5 + [True] * 5
    assert not q.temporal_mask.any()
    v = q.visible()
    assert (v.xy[q.spatial_mask] == 0).all() and (v.t_minutes == q.t_minutes).all()
    # the context is computed at the true (hidden) location: hidden with it (issue 11 leak)
    assert torch.equal(q.context_mask, q.spatial_mask)
    for name in ("road_class", "road_lanes", "road_maxspeed", "poi_category"):
        assert (getattr(v, name)[q.spatial_mask] == 0).all(), name
    assert (v.context[q.spatial_mask] == 0).all()
    assert (v.poi_category[~q.spatial_mask & ~q.padding_mask] == 3).all()  # visible context stays
    assert (v.context[~q.spatial_mask & ~q.padding_mask][:, 0] == 0.5).all()
    assert torch.equal(v.has_context, q.has_context)
    y_true, _ = TrajectoryPrediction().select(q, {"xy": torch.zeros_like(q.xy)})
    assert y_true.shape == (10, 2)
    # trip 0 (7 points): hidden points 2..6 at x = 20..60 m relative to the first point
    assert y_true[:5, 0].tolist() == [20.0, 30.0, 40.0, 50.0, 60.0]
    with pytest.raises(ValueError):
        TrajectoryPrediction().make_query(batch_of(6))


def test_tr_keeps_every_eighth_point_and_the_last():
    b = batch_of(9, 18, 13)
    q = TrajectoryRecovery().make_query(b)
    hidden = q.spatial_mask
    assert [i for i in range(18) if not hidden[1, i]] == [0, 8, 16, 17]  # the last point is kept
    assert [i for i in range(9) if not hidden[0, i]] == [0, 8]
    assert [i for i in range(13) if not hidden[2, i]] == [0, 8, 12]
    assert not hidden[0, 9:].any()  # padding never hidden
    assert hidden.sum().item() == 7 + 14 + 10
    assert not q.temporal_mask.any()


def test_od_tte_query_is_origin_and_destination():
    b = batch_of(5, 12)
    q = ODTravelTime().make_query(b)
    assert q.xy.shape == (2, 2, 2) and q.lengths.tolist() == [2, 2] and not q.padding_mask.any()
    assert q.temporal_mask.tolist() == [[False, True], [False, True]] and not q.spatial_mask.any()
    assert q.xy[0, 1].tolist() == [40.0, 4.0] and q.xy[1, 1].tolist() == [110.0, 11.0]
    assert q.t_minutes[:, 1].tolist() == [4.0, 11.0]
    assert q.minute_of_day[1].tolist() == [600, 611]
    assert torch.equal(q.departure, b.departure)
    v = q.visible()
    assert v.t_minutes[:, 1].tolist() == [0.0, 0.0] and v.minute_of_day[:, 1].tolist() == [0, 0]
    assert v.xy[1, 1].tolist() == [110.0, 11.0]  # destination position stays visible
    y_true, y_pred = ODTravelTime().select(q, {"t_minutes": torch.full((2, 2), 5.0), "xy": q.xy})
    assert y_true.tolist() == [[4.0], [11.0]] and y_pred.tolist() == [[5.0], [5.0]]
    m = ODTravelTime().metrics(y_true.numpy(), y_pred.numpy())
    assert m["MAE"] == pytest.approx(3.5)
    assert m["RMSE"] == pytest.approx(math.sqrt((1 + 36) / 2))
    assert m["MAPE"] == pytest.approx((1 / 4 + 6 / 11) / 2)


def test_displacement_metrics_and_losses():
    task = TrajectoryPrediction()
    q = task.make_query(batch_of(7))
    pred = q.xy.clone()
    pred[q.spatial_mask] += torch.tensor([3.0, 4.0])  # every hidden point 5 m off
    y_true, y_pred = task.select(q, {"xy": pred})
    assert task.metrics(y_true.numpy(), y_pred.numpy()) == pytest.approx({"MAE": 5.0, "RMSE": 5.0})
    # loss in km: mean of (0.003^2, 0.004^2)
    assert task.loss(q, {"xy": pred}).item() == pytest.approx((0.003 ** 2 + 0.004 ** 2) / 2, rel=1e-4)
    m = task.metrics(np.zeros((2, 2)), np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert m == pytest.approx({"MAE": 2.5, "RMSE": math.sqrt(12.5)})
    od = ODTravelTime()
    qo = od.make_query(batch_of(5))
    t = torch.tensor([[0.0, 6.0]], requires_grad=True)
    loss = od.loss(qo, {"t_minutes": t})
    assert loss.item() == pytest.approx(4.0)  # (6 - 4)^2 minutes^2
    loss.backward()
    assert t.grad[0, 0] == 0 and t.grad[0, 1] != 0


def test_select_rejects_wrong_shapes():
    q = TrajectoryRecovery().make_query(batch_of(9))
    with pytest.raises(ValueError):
        TrajectoryRecovery().select(q, {"xy": torch.zeros(1, 3, 2)})
    with pytest.raises(KeyError):
        TrajectoryRecovery().select(q, {"t_minutes": torch.zeros(1, 9)})


def test_interpolation_baseline_exact_on_constant_velocity_and_by_hand():
    from trajzoo.tasks.point_base import interpolate_positions, interpolation_baseline
    from trajzoo.training.point_tasks import evaluate_point_task

    rows = [row("a", 20), row("b", 13, x0=0.0, step_s=30)]
    for task in (TrajectoryPrediction(), TrajectoryRecovery()):
        out = interpolation_baseline(task, rows, "toy", max_len=400)
        assert set(out) == {"MAE", "RMSE", "n", "n_predictions"} and out["n"] == 2
        assert out["MAE"] == pytest.approx(0.0, abs=1e-6)  # straight line at constant speed
    assert interpolation_baseline(TrajectoryPrediction(), rows, "toy", 400)["n_predictions"] == 10
    # by hand: a turn with uneven sampling
    r = row("c", 10)
    r["x"] = np.array([0, 10, 20, 30, 40, 50, 60, 70, 80, 90], dtype=float)
    r["y"] = np.array([0, 0, 0, 0, 0, 10, 20, 30, 40, 50], dtype=float)
    r["t"] = 1_400_000_000 + np.array([0, 60, 120, 180, 240, 300, 360, 420, 600, 660])
    q = TrajectoryRecovery(keep_every=4).make_query(collate_points([r], "toy", 400))  # keeps 0, 4, 8, 9
    p = interpolate_positions(q)[0]
    assert p[2].tolist() == pytest.approx([20.0, 0.0])
    assert p[6].tolist() == pytest.approx([40 + 40 * 120 / 360, 40 * 120 / 360])  # time-linear, not index-linear
    q = TrajectoryPrediction(n_predict=3).make_query(collate_points([r], "toy", 400))  # last visible 6 (t=360)
    p = interpolate_positions(q)[0]
    assert p[8].tolist() == pytest.approx([60 + 240 / 60 * 10, 20 + 240 / 60 * 10])  # constant velocity
    # reads only visible values: hidden x, y zeroed in the query give the same baseline
    assert torch.equal(interpolate_positions(q), interpolate_positions(q.visible()))
    # the same numbers through the model loop with the baseline as a "model"

    class Baseline(torch.nn.Module):
        def predict(self, query):
            return {"xy": interpolate_positions(query).float(), "t_minutes": query.t_minutes}

    curvy = [r, row("d", 30, step_s=15)]
    for task in (TrajectoryPrediction(), TrajectoryRecovery(keep_every=4)):
        a = interpolation_baseline(task, curvy, "toy", 400)
        b = evaluate_point_task(Baseline(), task, curvy, 8, "cpu", "toy", 400)
        assert a == pytest.approx(b) and a["MAE"] >= 0
    with pytest.raises(ValueError, match="recovers"):
        interpolation_baseline(ODTravelTime(), rows, "toy")
    with pytest.raises(ValueError, match="no trajectory"):
        interpolation_baseline(TrajectoryPrediction(), [], "toy")
