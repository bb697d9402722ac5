"""Task locations (trajzoo.locations): road points every spacing_m, association within delta,
the location split by segment, accounting, and the location metrics against hand values."""
import numpy as np
import pandas as pd
import pytest

from trajzoo.locations import associate, build_locations, enclosing_pair, fix_kinematics, sample_road_locations, \
    split_locations
from trajzoo.metrics import distribution_metrics, ordinal_classification_metrics, r2_regression_metrics

SEGMENTS = pd.DataFrame({"segment_id": [0, 1, 2], "u": [1, 2, 2], "v": [2, 1, 3], "length": [250.0, 250.0, 50.0],
                         "geometry_wkt": ["LINESTRING (0 0, 250 0)", "LINESTRING (250 0, 0 0)",
                                          "LINESTRING (250 0, 250 50)"]})


def test_points_every_spacing_on_undirected_roads():
    loc = sample_road_locations(SEGMENTS, 100)
    # segment 1 is the other direction of segment 0: one set of points; 250 m -> 2 points at 62.5, 187.5
    assert loc["segment_id"].tolist() == [0, 0, 2]
    assert np.allclose(loc["x"], [62.5, 187.5, 250]) and np.allclose(loc["y"], [0, 0, 25])
    with pytest.raises(ValueError, match="spacing_m"):
        sample_road_locations(SEGMENTS, 0)


def test_association_within_delta():
    locs = pd.DataFrame({"location_id": [0, 1], "x": [100.0, 100.0], "y": [0.0, 80.0]})
    rows = [{"trip_id": "a", "x": np.array([0.0, 200.0]), "y": np.array([10.0, 10.0])},
            {"trip_id": "b", "x": np.array([0.0, 200.0]), "y": np.array([45.0, 45.0])}]
    out = associate(locs, rows, ["train", "test"], 30)
    assert out[["location_id", "trip_id", "split"]].values.tolist() == [[0, "a", "train"]]
    assert out["dist_m"].tolist() == [10.0]
    out = associate(locs, rows, ["train", "test"], 40)
    assert sorted(map(tuple, out[["location_id", "trip_id"]].values.tolist())) == [(0, "a"), (1, "b")]  # b is 45 m from 0


def test_build_locations_accounts_for_every_candidate():
    rows = [{"trip_id": "a", "x": np.array([0.0, 250.0]), "y": np.array([5.0, 5.0])}]
    locs, assoc, qc = build_locations(SEGMENTS, rows, ["train"], 100, 10, "EPSG:32629",
                                      {"train": 1.0, "val": 0.0, "test": 0.0}, None, 0)
    c = dict(zip(qc["outcome"], qc["count"]))
    assert c == {"in": 3, "kept": 2, "rejected:no_train_trip": 1}
    assert locs["location_id"].tolist() == [0, 1] and set(assoc["location_id"]) == {0, 1}


def test_location_split_keeps_a_segment_together():
    seg = np.array([5, 5, 7, 9, 9, 9, 11])
    lab = split_locations(seg, {"train": 0.5, "val": 0.25, "test": 0.25}, 0)
    for s in np.unique(seg):
        assert len(set(lab[seg == s])) == 1
    assert (lab == split_locations(seg, {"train": 0.5, "val": 0.25, "test": 0.25}, 0)).all()


def test_kinematics_and_enclosing_pair():
    r = {"x": np.array([0.0, 100.0, 150.0]), "y": np.zeros(3), "t": np.array([0, 10, 20])}
    v, a = fix_kinematics(r)
    assert v.tolist() == [10.0, 5.0] and a[1] == pytest.approx(-0.5) and np.isnan(a[0])
    assert enclosing_pair(r, 120, 3) == (1, pytest.approx(0.4))


def test_location_metrics_by_hand():
    m = r2_regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert m["MAE"] == pytest.approx(1 / 3) and m["RMSE"] == pytest.approx(np.sqrt(1 / 3))
    assert m["R2"] == pytest.approx(1 - 1 / 2)
    d = distribution_metrics(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([[0.5, 0.5], [0.5, 0.5]]))
    assert d["L1"] == pytest.approx((1.0 + 0.0) / 2) and d["cosine"] == pytest.approx((np.sqrt(0.5) + 1) / 2)
    c = ordinal_classification_metrics(np.array([0, 1, 1]), np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]))
    assert c["F1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    # class 0: tie of a positive and a negative at the top score -> AP 1/2; class 1: 1/2 * 1 + 1/2 * 2/3
    assert c["AUPRC"] == pytest.approx((0.5 + (0.5 + 0.5 * 2 / 3)) / 2)


def test_image_locations_snap_to_their_segment_or_are_rejected():
    rows = [{"trip_id": "a", "x": np.array([0.0, 250.0]), "y": np.array([5.0, 5.0])}]
    images = pd.DataFrame({"image_id": ["i1", "i2"], "x": [100.0, 100.0], "y": [8.0, 400.0]})
    locs, _, qc = build_locations(SEGMENTS, rows, ["train"], 100, 10, "EPSG:32629",
                                  {"train": 1.0, "val": 0.0, "test": 0.0}, None, 0, images=images)
    assert locs["source"].tolist() == ["i1"] and locs[["x", "y"]].values.tolist() == [[100.0, 0.0]]
    assert dict(zip(qc["outcome"], qc["count"])) == {"in": 2, "kept": 1, "rejected:image_off_road": 1}
