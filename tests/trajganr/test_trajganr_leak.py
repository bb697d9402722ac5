"""Labels come from TEST trips only and no label-window (test) trip reaches a model input:
train_view keeps only TRAIN trips; perturbing the test trips changes the labels and not the
model's features."""
import numpy as np
import pytest
import torch

from trajzoo.data.prepared import PreparedCity
from trajzoo.locations import train_view
from trajzoo.tasks.location import HardBraking, RoadPopularity, TrafficSpeed
from trajzoo_trajganr.model import TrajGANR
from trajzoo_trajganr.parameters import TrajGANRConfig

from toy import location_view, straight_rows

SPLITS = {"a": "train", "b": "train", "c": "test", "d": "test", "e": "val"}


def city_of(rows):
    view = location_view(rows, SPLITS)
    points = {s: [dict(r) for t, r in sorted(rows.items()) if SPLITS[t] == s] for s in ("train", "val", "test")}
    return PreparedCity("toy", "UTC", points=points, locations=view)


def features(city):
    torch.manual_seed(0)
    m = TrajGANR(TrajGANRConfig(d_model=16, heads=2, agg_heads=2, ffn_dim=16, layers=1, window=8))
    return m.location_features(train_view(city), "cpu")


def test_train_view_holds_no_test_or_val_trip():
    inputs = train_view(city_of(straight_rows()))
    assert set(inputs.rows) == {"a", "b"} and set(inputs.trips["trip_id"]) <= {"a", "b"}
    assert (inputs.trips["split"] == "train").all()


def test_perturbing_test_trips_changes_labels_not_features():
    rows = straight_rows()
    city = city_of(rows)
    f1 = features(city)
    test_rows = [{**r, "split": "test"} for r in city.points["test"]]
    lab1 = TrafficSpeed().raw_labels(city.locations, test_rows)[0]
    fast = {**rows, "c": {**rows["c"], "t": rows["c"]["t"][0] + (rows["c"]["t"] - rows["c"]["t"][0]) // 2}}
    city2 = city_of(fast)
    f2 = features(city2)
    lab2 = TrafficSpeed().raw_labels(city2.locations, [{**r, "split": "test"} for r in city2.points["test"]])[0]
    assert not np.allclose(lab1[:3], lab2[:3])  # labels read the test trips
    for k in f1:
        assert torch.equal(f1[k], f2[k]), k  # features do not


def test_labels_refuse_non_test_rows():
    city = city_of(straight_rows())
    with pytest.raises(ValueError, match="test trips only"):
        TrafficSpeed().prepare(city.locations, [{**r, "split": "train"} for r in city.points["train"]])


def test_location_labels_by_hand():
    rows = straight_rows()
    city = city_of(rows)
    test_rows = [{**r, "split": "test"} for r in city.points["test"]]
    speed, why = TrafficSpeed().raw_labels(city.locations, test_rows)
    # trip c: 50 m per 10 s = 5 m/s; trip d: 100 m per 15 s
    assert speed[0] == pytest.approx((5.0 + 100 / 15) / 2) and why[3] == "no_test_trip"
    counts, _ = RoadPopularity().raw_labels(city.locations, test_rows)
    assert counts.tolist() == [2, 2, 2, 0]
    rate, _ = HardBraking(threshold_mps2=0.1).raw_labels(city.locations, test_rows)
    assert rate[0] == 0.0  # constant speed: no braking
    braking = {**rows["c"], "t": np.concatenate([rows["c"]["t"][:4], rows["c"]["t"][4] + 2 * (rows["c"]["t"][4:] - rows["c"]["t"][4])])}
    city3 = city_of({**rows, "c": braking})
    rate3, _ = HardBraking(threshold_mps2=0.1).raw_labels(city3.locations, [{**r, "split": "test"} for r in city3.points["test"]])
    assert rate3[0] > 0  # trip c slows from 5 to 2.5 m/s at x = 300: a = -2.5 / 15 m/s^2


def test_task_accounting_in_equals_kept_plus_excluded():
    city = city_of(straight_rows())
    data = TrafficSpeed().prepare(city.locations, [{**r, "split": "test"} for r in city.points["test"]])
    for s, g in data.qc.groupby("split"):
        c = dict(zip(g["outcome"], g["count"]))
        assert c["in"] == c["kept"] + sum(v for k, v in c.items() if k.startswith("rejected:"))
    assert "rejected:no_test_trip" in set(data.qc["outcome"])
