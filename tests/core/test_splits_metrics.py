"""Splits are deterministic; metrics agree with hand computations."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from trajzoo.metrics import classification_metrics, regression_metrics
from trajzoo.qc import AccountingError, stage_counts
from trajzoo.splits import split_trips

FR = {"train": 0.8, "val": 0.1, "test": 0.1}


def test_split_is_deterministic_and_order_free():
    ids = [f"t{i}" for i in range(1000)]
    a, _ = split_trips(ids, FR, seed=0)
    b, _ = split_trips(list(reversed(ids)), FR, seed=0)
    c, _ = split_trips(ids, FR, seed=1)
    assert a.equals(b)
    assert not a["split"].equals(c["split"])
    assert a["split"].value_counts().to_dict() == {"train": 800, "val": 100, "test": 100}


def test_split_train_cap_is_counted():
    ids = [f"t{i}" for i in range(100)]
    s, qc = split_trips(ids, FR, seed=0, max_train=50)
    assert s["split"].value_counts().to_dict() == {"train": 50, "unused": 30, "val": 10, "test": 10}
    assert dict(zip(qc["outcome"], qc["count"])) == {"in": 100, "kept": 70, "rejected:train_cap": 30}


def test_split_val_and_test_caps_are_counted_and_keep_the_rest_of_the_split():
    ids = [f"t{i}" for i in range(100)]
    plain, _ = split_trips(ids, FR, seed=0)
    s, qc = split_trips(ids, FR, seed=0, max_train=50, max_val=4, max_test=7)
    assert s["split"].value_counts().to_dict() == {"train": 50, "unused": 39, "test": 7, "val": 4}
    assert dict(zip(qc["outcome"], qc["count"])) == {"in": 100, "kept": 61, "rejected:test_cap": 3,
                                                     "rejected:train_cap": 30, "rejected:val_cap": 6}
    for split in ("train", "val", "test"):  # a capped split is a subset of the uncapped one
        assert set(s.loc[s["split"] == split, "trip_id"]) <= set(plain.loc[plain["split"] == split, "trip_id"])


def test_split_rejects_bad_fractions_and_duplicates():
    with pytest.raises(ValueError):
        split_trips(["a", "b"], {"train": 0.5, "val": 0.1, "test": 0.1}, 0)
    with pytest.raises(ValueError):
        split_trips(["a", "a"], FR, 0)


def test_stage_counts_refuses_lost_trips():
    with pytest.raises(AccountingError):
        stage_counts("x", 10, 7, np.array(["a", "b"]))


def test_regression_metrics_by_hand():
    m = regression_metrics(np.array([10.0, 20.0, 40.0]), np.array([12.0, 15.0, 40.0]))
    assert m["MAE"] == pytest.approx(7 / 3)
    assert m["MAPE"] == pytest.approx((0.2 + 0.25 + 0) / 3)
    assert m["RMSE"] == pytest.approx(np.sqrt((4 + 25) / 3))


def test_classification_metrics_by_hand_and_sklearn():
    y = np.array([0, 1, 2, 2, 3, 0])
    scores = np.array([
        [0.9, 0.05, 0.03, 0.01, 0.01, 0.0],   # 0 right
        [0.5, 0.4, 0.05, 0.03, 0.02, 0.0],    # predicts 0, true 1 in top-2
        [0.1, 0.2, 0.6, 0.05, 0.05, 0.0],     # 2 right
        [0.3, 0.3, 0.01, 0.2, 0.19, 0.0],     # predicts 0, true 2 ranked 5th
        [0.01, 0.02, 0.03, 0.04, 0.05, 0.85],  # predicts 5, true 3 ranked 3rd
        [0.1, 0.6, 0.1, 0.1, 0.05, 0.05],     # predicts 1, true 0 2nd
    ])
    m = classification_metrics(y, scores, ks=(1, 5))
    pred = scores.argmax(1)
    assert m["Micro-F1"] == pytest.approx(2 / 6)
    assert m["Macro-F1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["Recall@1"] == pytest.approx(2 / 6)
    assert m["Recall@5"] == pytest.approx(6 / 6)
    # macro-F1 by hand: classes {0,1,2,3,5}: F1 0 = 2*0.5*0.33/(.83)=0.4, 1 = 0, 2 = 2*1*.5/1.5=.667, 3 = 0, 5 = 0
    assert m["Macro-F1"] == pytest.approx((0.4 + 0 + 2 / 3 + 0 + 0) / 5)


def test_metrics_reject_empty_input():
    with pytest.raises(ValueError):
        regression_metrics(np.array([]), np.array([]))
    with pytest.raises(ValueError):
        classification_metrics(np.array([0, 1]), np.zeros((3, 2)))
