"""Per-point features on a real Porto slice with the real road network and POIs; batches; few-shot subsets."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
import torch
from pyproj import Transformer

from trajzoo.data.points import (MAXSPEED_BUCKETS_KMH, POI_CATEGORIES, ROAD_CLASSES, collate_points,
                                 iterate_point_batches, point_rows)
from trajzoo.ingest.errors import InputFileError
from trajzoo.ingest.filters import filter_trips, haversine_m
from trajzoo.ingest.porto import read_porto_trips
from trajzoo.points import (POINT_COLUMNS, lanes_id, maxspeed_id, point_features, poi_category, read_pois,
                            road_km_within, undirected_segments)
from trajzoo.splits import few_shot_subset

CRS = "EPSG:32629"
TZ = "Europe/Lisbon"
PORTO_BBOX = [-8.70, 41.13, -8.54, 41.195]
POI_FILES = ("porto/poi/tourism_pois.csv", "porto/poi/osm_amenity_nodes.csv")


@pytest.fixture(scope="module")
def segments(data_root, real_road_network):
    segs, _ = real_road_network("porto/osm/porto_center.osm.bz2", CRS)
    return segs


@pytest.fixture(scope="module")
def trips(data_root):
    block, _ = next(read_porto_trips(data_root / "porto/train.csv.xz", max_trips=60))
    kept, _ = filter_trips(block, PORTO_BBOX, 5, 400, 50)
    return kept.head(30).reset_index(drop=True)


@pytest.fixture(scope="module")
def pois(data_root):
    return read_pois([data_root / p for p in POI_FILES])


@pytest.fixture(scope="module")
def features(trips, segments, pois):
    return point_features(trips, CRS, TZ, segments=segments, pois=pois)


def test_read_pois_maps_osm_values(pois):
    assert len(pois) == 683 + 291
    assert set(pois["category"]) <= set(POI_CATEGORIES)
    counts = pois["category"].value_counts().to_dict()
    # tourism: 147 lodging (hotel, hostel, guest_house, apartment); amenity: 173 parking, 84 fuel + car_wash
    assert counts["lodging"] == 38 + 46 + 48 + 15
    assert counts["parking"] == 14 + 157 + 2
    assert counts["fuel"] == 65 + 19
    assert poi_category("shop", "hairdresser") == "shop"
    assert poi_category("amenity", "no_such_value") == "other"
    assert poi_category("tourism", None) == "culture"
    assert poi_category("leisure", "slipway") == "leisure"


def test_read_pois_errors(tmp_path):
    bad = tmp_path / "p.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputFileError, match="neither"):
        read_pois([bad])
    bad.write_text("lon,lat,cat\n-8.6,41.1,hotel\n-8.6,north,hotel\n")
    with pytest.raises(InputFileError, match="row 2"):
        read_pois([bad])


def test_points_table_and_qc(trips, features):
    points, qc = features
    assert list(points.columns) == POINT_COLUMNS
    assert dict(zip(qc["outcome"], qc["count"])) == {"in": len(trips), "kept": len(trips)}
    assert list(points["trip_id"]) == list(trips["trip_id"].astype(str))
    assert (points["n_points"] == [len(t) for t in trips["timestamps"]]).all()
    assert points["has_poi"].all() and points["has_road"].all()


def test_projected_distances_match_haversine(trips, features):
    points, _ = features
    for (_, p), (_, t) in zip(points.head(10).iterrows(), trips.head(10).iterrows()):
        d_xy = np.hypot(np.diff(p["x"]), np.diff(p["y"]))
        d_h = haversine_m(t["lon"][:-1], t["lat"][:-1], t["lon"][1:], t["lat"][1:])
        moving = d_h > 20
        # UTM 29N near its central meridian: scale within 0.1 % (plus sphere vs ellipsoid ~0.3 %)
        np.testing.assert_allclose(d_xy[moving], d_h[moving], rtol=5e-3)
    # absolute UTM coordinates of Porto
    assert 520_000 < points["x"][0][0] < 540_000 and 4_550_000 < points["y"][0][0] < 4_565_000


def test_local_time_in_lisbon(trips, features):
    points, _ = features
    # the first kept Porto trip starts 1372636853 = 2013-07-01 00:00:53 UTC = 01:00:53 WEST (UTC+1), a Monday
    assert points["t"][0][0] == trips["timestamps"][0][0] == 1372636853
    assert points["minute_of_day"][0][0] == 60 and points["day_of_week"][0][0] == 0
    assert points["minute_of_day"][0][4] == 61  # 60 s later
    winter = pd.DataFrame({"trip_id": ["w"], "timestamps": [np.array([1388577600, 1388577660])],  # 2014-01-01 12:00 UTC
                           "lon": [np.array([-8.61, -8.611])], "lat": [np.array([41.15, 41.15])]})
    p, _ = point_features(winter, CRS, TZ)
    assert list(p["minute_of_day"][0]) == [720, 721] and p["day_of_week"][0][0] == 2  # WET = UTC, Wednesday


def test_road_class_near_a_known_motorway(segments):
    roads = undirected_segments(segments)
    motorway = roads[roads["highway"] == "motorway"].sort_values("length").iloc[-1]
    line = shapely.from_wkt(motorway["geometry_wkt"])
    mid = line.interpolate(0.5, normalized=True)
    to_deg = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    lon, lat = to_deg.transform([mid.x, mid.x + 5000], [mid.y, mid.y + 60000])  # 2nd point 60 km north: no road
    trip = pd.DataFrame({"trip_id": ["m"], "timestamps": [np.array([0, 3600])], "lon": [np.array(lon)],
                         "lat": [np.array(lat)]})
    p, _ = point_features(trip, CRS, TZ, segments=segments)
    assert p["road_class"][0][0] == ROAD_CLASSES.index("motorway") + 1
    assert p["road_lanes"][0][0] == lanes_id(np.array([motorway["lanes"]]))[0]
    assert p["road_maxspeed"][0][0] == maxspeed_id(np.array([motorway["maxspeed"]]))[0]
    assert p["road_class"][0][1] == 0 and p["road_km"][0][1] == 0  # nothing within the radius
    assert p["has_road"][0] and not p["has_poi"][0]
    assert p["road_km"][0][0] > 1.0


def test_undirected_segments_drop_reverse_twins(segments):
    roads = undirected_segments(segments)
    assert len(roads) < len(segments)
    pair = pd.DataFrame({"a": np.minimum(roads["u"], roads["v"]), "b": np.maximum(roads["u"], roads["v"]),
                         "o": roads["osmid"], "l": roads["length"].round(1)})
    assert not pair.duplicated().any()


def test_road_km_close_to_exact_intersection(features, segments):
    points, _ = features
    roads = undirected_segments(segments)
    lines = shapely.from_wkt(roads["geometry_wkt"].to_numpy())
    x = np.concatenate(points["x"].to_list())[::97][:8]
    y = np.concatenate(points["y"].to_list())[::97][:8]
    approx = road_km_within(x, y, lines, 500.0)
    tree = shapely.STRtree(lines)
    for i in range(len(x)):
        disk = shapely.Point(x[i], y[i]).buffer(500.0, quad_segs=64)
        near = tree.query(disk)
        exact = float(shapely.length(shapely.intersection(lines[near], disk)).sum()) / 1000
        assert approx[i] == pytest.approx(exact, rel=0.05)


def test_poi_context_matches_brute_force(features, pois):
    points, _ = features
    to_xy = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    px, py = to_xy.transform(pois["lon"].to_numpy(), pois["lat"].to_numpy())
    cat = np.array([POI_CATEGORIES.index(c) + 1 for c in pois["category"]])
    x = np.concatenate(points["x"].to_list())
    y = np.concatenate(points["y"].to_list())
    log_count = np.concatenate(points["poi_log_count"].to_list())
    poi_cat = np.concatenate(points["poi_category"].to_list())
    assert (poi_cat > 0).any() and (poi_cat == 0).any()
    for i in range(0, len(x), 53):
        d = np.hypot(px - x[i], py - y[i])
        assert log_count[i] == pytest.approx(np.log1p((d <= 500).sum()))
        near = np.bincount(cat[d <= 200], minlength=len(POI_CATEGORIES) + 1)
        assert poi_cat[i] == (int(near.argmax()) if near.max() > 0 else 0)


def test_missing_context_for_a_city_without_roads_or_pois(trips):
    p, qc = point_features(trips.head(3), CRS, TZ)
    for col in ("road_class", "road_lanes", "road_maxspeed", "poi_category"):
        assert all((np.asarray(v) == 0).all() for v in p[col])
    for col in ("road_km", "poi_log_count"):
        assert all((np.asarray(v) == 0).all() for v in p[col])
    assert not p["has_road"].any() and not p["has_poi"].any()
    batch = collate_points(point_rows(p), "chengdu", 400)
    assert not batch.has_context.any() and (batch.context == 0).all()


def test_bad_trips_are_counted():
    trips = pd.DataFrame({"trip_id": ["a", "b", "c"],
                          "timestamps": [np.array([0, 15]), np.array([], dtype=np.int64), np.array([0, 15])],
                          "lon": [np.array([-8.6, -8.61]), np.array([]), np.array([-8.6])],
                          "lat": [np.array([41.15, 41.15]), np.array([]), np.array([41.15, 41.16])]})
    p, qc = point_features(trips, CRS, TZ)
    assert list(p["trip_id"]) == ["a"]
    assert dict(zip(qc["outcome"], qc["count"])) == {"in": 3, "kept": 1, "rejected:no_points": 1,
                                                     "rejected:point_lists_differ_in_length": 1}


def test_vocabulary_ids():
    np.testing.assert_array_equal(lanes_id(np.array([np.nan, 1, 2.4, 9])), [0, 1, 2, 6])
    ids = maxspeed_id(np.array([np.nan, 20, 30, 50, 51, 120, 200]))
    np.testing.assert_array_equal(ids, [0, 1, 2, 4, 5, 8, 9])
    assert len(MAXSPEED_BUCKETS_KMH) == 9


def test_collate_points_relative_truncated_and_padded(features):
    points, _ = features
    rows = point_rows(points.head(3))
    batch = collate_points(rows, "porto", max_len=20)
    n = [min(len(r["x"]), 20) for r in rows]
    assert batch.lengths.tolist() == n and batch.max_len == max(n)
    assert (batch.xy[:, 0] == 0).all() and (batch.t_minutes[:, 0] == 0).all()
    r = rows[0]
    assert batch.xy[0, 3, 0].item() == pytest.approx(r["x"][3] - r["x"][0], abs=1e-3)
    assert batch.t_minutes[0, 3].item() == pytest.approx(0.75)  # Porto: 15 s sampling
    assert batch.departure[0].item() == r["t"][0]
    assert batch.origin.dtype == torch.float64 and batch.origin[0].tolist() == [r["x"][0], r["y"][0]]  # city frame
    assert batch.context[0, 2, 1].item() == pytest.approx(r["road_km"][2], rel=1e-6)
    assert batch.has_context[~batch.padding_mask].all() and not batch.has_context[batch.padding_mask].any()
    assert not batch.spatial_mask.any() and not batch.temporal_mask.any()
    for i, k in enumerate(n):
        assert batch.padding_mask[i].tolist() == [False] * k + [True] * (batch.max_len - k)
    with pytest.raises(ValueError):
        collate_points([], "porto", 10)


def test_iterate_point_batches_is_deterministic(features):
    rows = point_rows(features[0])
    ids = lambda g: [b.trip_ids for b in iterate_point_batches(rows, 8, "porto", 50, True, g)]  # noqa: E731
    a, b = ids(torch.Generator().manual_seed(1)), ids(torch.Generator().manual_seed(1))
    assert a == b and sorted(sum(a, [])) == sorted(r["trip_id"] for r in rows)
    plain = [b.trip_ids for b in iterate_point_batches(rows, 8, "porto", 50)]
    assert sum(plain, []) == [r["trip_id"] for r in rows] and len(plain) == 4


def test_few_shot_subsets_are_nested_and_deterministic():
    ids = [f"t{i}" for i in range(1000)]
    s5, s10, s20 = (few_shot_subset(ids, f, seed=3) for f in (0.05, 0.1, 0.2))
    assert (len(s5), len(s10), len(s20)) == (50, 100, 200)
    assert set(s5) <= set(s10) <= set(s20)
    assert few_shot_subset(list(reversed(ids)), 0.1, seed=3) == s10
    assert few_shot_subset(ids, 0.1, seed=4) != s10
    assert few_shot_subset(ids[:3], 0.05, seed=0) != []
    with pytest.raises(ValueError):
        few_shot_subset(ids, 0.0, seed=0)
