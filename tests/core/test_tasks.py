"""Downstream tasks: labels, eligibility, and that TTE cannot see any timestamp but the departure."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from trajzoo.data.batch import RoadGraph, hide_times
from trajzoo.data.city import CityData, add_time_features, collate
from trajzoo.registry import get_model, get_task
from trajzoo.tasks.tte import TravelTimeEstimation


def toy_city(n_trips=40, n_segments=12):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_trips):
        n = int(rng.integers(3, 12))
        start = 1372636800 + int(rng.integers(0, 86400 * 7))
        enter = start + np.concatenate([[0.0], np.cumsum(rng.uniform(5, 40, n - 1))])
        rows.append({"trip_id": f"t{i:03d}", "taxi_id": f"x{i % 6}", "call_type": "ABC"[i % 3],
                     "roads": rng.integers(0, n_segments, n), "enter_times": enter, "end_time": enter[-1] + 10.0,
                     "split": ("train", "train", "val", "test")[i % 4]})
    trips = add_time_features(pd.DataFrame(rows), "Europe/Lisbon")
    src = torch.arange(n_segments)
    gen = torch.Generator().manual_seed(0)
    graph = RoadGraph("toy", n_segments, torch.randn(n_segments, 6, generator=gen),
                      torch.randn(n_segments, 4, generator=gen),
                      torch.stack([src, (src + 1) % n_segments]), torch.full((n_segments,), 1.0))
    return CityData("toy", "Europe/Lisbon", graph, trips)


def test_time_features_use_local_time():
    city = toy_city()
    t0 = city.trips["enter_times"][0][0]
    local = pd.Timestamp(t0, unit="s", tz="UTC").tz_convert("Europe/Lisbon")
    assert city.trips["minute_of_day"][0][0] == local.hour * 60 + local.minute
    assert city.trips["day_of_week"][0][0] == local.day_of_week
    assert city.trips["seconds"][0][0] == 0


def test_tte_labels_are_minutes_to_last_matched_point():
    city = toy_city()
    data = get_task("tte").prepare(city)
    trip = city.trips[city.trips["split"] == "train"].iloc[0]
    assert data.labels["train"][0] == pytest.approx((trip["end_time"] - trip["enter_times"][0]) / 60)


def test_tte_input_view_leaks_no_later_timestamp():
    city = toy_city()
    task = TravelTimeEstimation()
    data = task.prepare(city)
    batch = collate(data.rows["test"])
    later = replace(batch, seconds=batch.seconds * 3 + 100 * (~batch.padding_mask),
                    minute_of_day=(batch.minute_of_day + 77) % 1440, day_of_week=(batch.day_of_week + 3) % 7)
    later.seconds[:, 0] = 0
    later.minute_of_day[:, 0] = batch.minute_of_day[:, 0]
    later.day_of_week[:, 0] = batch.day_of_week[:, 0]
    a, b = task.input_view(batch), task.input_view(later)
    for f in ("seconds", "minute_of_day", "day_of_week", "time_known"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert not a.time_known[:, 1:].any()
    torch.manual_seed(0)
    encoder = get_model("metatrl").build_encoder(city.graph, {"d_model": 16, "heads": 2, "ffn_dim": 32})
    encoder.eval()
    with torch.no_grad():
        assert torch.allclose(encoder.embed(a, city.graph), encoder.embed(b, city.graph))
        # and the un-hidden batches do differ, so the check above has teeth
        assert not torch.allclose(encoder.embed(batch, city.graph), encoder.embed(later, city.graph))


def test_dp_hides_last_segments_and_predicts_final_one():
    city = toy_city()
    data = get_task("dp", hidden_segments=4, min_prefix=2).prepare(city)
    kept = city.trips[[len(r) >= 6 for r in city.trips["roads"]]]
    train = kept[kept["split"] == "train"]
    assert len(data.rows["train"]) == len(train)
    first = train.iloc[0]
    assert list(data.rows["train"][0]["roads"]) == list(first["roads"][:-4])
    assert data.labels["train"][0] == first["roads"][-1]
    counts = dict(zip(data.qc["outcome"], data.qc["count"]))
    assert counts["in"] == 40 and counts["kept"] == len(kept)
    assert data.n_outputs == city.graph.num_segments


def test_taxi_classification_keeps_taxis_with_enough_trips():
    city = toy_city()
    city.trips.loc[city.trips["taxi_id"] == "x5", "taxi_id"] = [f"solo{i}" for i in range((city.trips["taxi_id"] == "x5").sum())]
    data = get_task("cla_taxi", min_trips=5).prepare(city)
    assert data.class_names == ["x0", "x1", "x2", "x3", "x4"]
    counts = dict(zip(data.qc["outcome"], data.qc["count"]))
    assert counts["rejected:taxi_fewer_than_5_trips"] == (city.trips["taxi_id"].str.startswith("solo")).sum()


def test_call_type_classes():
    data = get_task("cla_calltype").prepare(toy_city())
    assert data.class_names == ["A", "B", "C"] and data.n_outputs == 3


def test_hide_times_forward_fills():
    city = toy_city()
    batch = collate(city.split("train").head(3).to_dict("records"))
    hidden = torch.zeros_like(batch.padding_mask)
    hidden[:, 2] = True
    out = hide_times(batch, hidden)
    assert torch.equal(out.seconds[:, 2], batch.seconds[:, 1])
    assert not out.time_known[:, 2].any() and out.time_known[:, 1].all()
