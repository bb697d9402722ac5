"""Map-matching quality (issue 17) on real trips: standstill loops, route / GPS ratio, revisited
segments, failure reasons, and trips leaving the road network rejected at ingest."""
from __future__ import annotations

import tarfile

import numpy as np
import pandas as pd
import pytest

from trajzoo.ingest import city_coverage, ingest_city, network_coverage
from trajzoo.ingest.coverage import osm_bounds
from trajzoo.mapmatching.chunks import gather_chunks
from trajzoo.mapmatching.fmm import MatchParams, match_trips
from trajzoo.mapmatching.quality import (collapse_stationary, count_revisits, describe_failure, index_ranges,
                                         parse_index_ranges)

FILTERS = {"min_points": 5, "max_points": 400, "max_speed_mps": 50}
PORTO = {"trajectories": {"format": "porto_csv", "path": "porto/train.csv.xz"},
         "bbox": [-8.70, 41.13, -8.54, 41.195], "filters": FILTERS, "caps": {"max_trips": 291}}
#: Data row 291 of porto/train.csv.xz: 47 fixes, the last 15 of them 1-4 m apart (a standstill).
LOOP_TRIP = "1372650904620000307"
#: What matching did before issue 17: no reverse tolerance, no stationary collapse, no ratio cap.
OLD = dict(reverse_tolerance=0.0, stationary_radius_m=0.0, max_route_gps_ratio=None)
SF_CRS = "EPSG:32610"
#: The San Francisco bounding box configured before issue 17 (wider than the OSM extract).
SF_WIDE_BBOX = [-122.49, 37.775, -122.39, 37.815]
SF_OSM = "sanfrancisco/osm/sf_north.osm.bz2"
#: A real fare of cab abboip (19 fixes) whose last 4 fixes are south of the OSM extract.
LEAVING_TRIP = "abboip_1211057102"


@pytest.fixture(scope="module")
def porto(data_root, real_road_network, tmp_path_factory):
    seg, adj = real_road_network("porto/osm/porto_center.osm.bz2", "EPSG:32629")
    trips, _, _ = ingest_city(PORTO, data_root)
    trip = trips[trips["trip_id"] == LOOP_TRIP].reset_index(drop=True)
    assert len(trip) == 1
    return seg, adj, trip, tmp_path_factory.mktemp("ubodt_porto")


@pytest.fixture(scope="module")
def sf(data_root, real_road_network, tmp_path_factory):
    """The real cab file new_abboip.txt (the archive's first) in a folder, and the SF network."""
    folder = tmp_path_factory.mktemp("cabs")
    with tarfile.open(data_root / "sanfrancisco/cabspottingdata_north_14d.tar.xz", "r|*") as tar:
        for member in tar:
            if member.name.endswith("new_abboip.txt"):
                tar.extract(member, folder, filter="data")
                break
    seg, _ = real_road_network(SF_OSM, SF_CRS)
    seg_path = folder / "segments.parquet"
    seg.to_parquet(seg_path, index=False)
    city = {"trajectories": {"format": "cabspotting", "path": "cabspottingdata",
                             "occupied_runs": {"max_gap_seconds": 300, "min_fixes": 5}},
            "bbox": SF_WIDE_BBOX, "filters": FILTERS, "caps": {"max_trips": None}, "crs": SF_CRS,
            "osm": {"file": SF_OSM}}
    return folder, seg, seg_path, city, tmp_path_factory.mktemp("ubodt_sf"), data_root


def match(trips, seg, crs, ubodt, **kw):
    return match_trips(trips, seg, crs, MatchParams(ubodt_delta=1000, **kw), ubodt, progress=False)


# ---------------------------------------------------------------------------------------------
# 1. standstill loops


def test_standstill_tail_looped_the_block_before(porto):
    """The real trip the issue names: with the old settings its route repeats a four-segment block
    nine times (33 revisits) and is about three times the GPS path."""
    seg, _, trip, ubodt = porto
    lon, lat = trip["lon"][0], trip["lat"][0]
    from trajzoo.ingest.filters import haversine_m
    steps = haversine_m(lon[:-1], lat[:-1], lon[1:], lat[1:])
    assert len(lon) == 47 and (steps[-14:] < 4).all() and steps[-15] > 50  # the standstill tail
    matched, stats, _ = match(trip, seg, "EPSG:32629", ubodt, **OLD)
    assert len(matched) == 1
    s = stats.iloc[0]
    assert s["n_revisited"] >= 30 and s["route_gps_ratio"] > 2.5
    roads = matched["roads"][0]
    block = list(roads[-4:])
    assert roads[-4 * 8:].tolist() == block * 8  # the same four segments, again and again


def test_standstill_tail_does_not_loop_with_the_defaults(porto):
    seg, adj, trip, ubodt = porto
    matched, stats, rej = match(trip, seg, "EPSG:32629", ubodt)
    assert len(matched) == 1 and len(rej) == 0
    s = stats.iloc[0]
    assert s["n_revisited"] == 0 and s["route_gps_ratio"] < 1.2
    assert s["n_stationary_dropped"] == 13  # 15 standstill fixes -> first and last
    assert s["matched_points"] == s["n_points"] == 47
    # times stay right: the route still ends at the trip's last fix
    assert matched["end_time"][0] == pytest.approx(float(trip["timestamps"][0][-1]))
    roads = matched["roads"][0]
    pairs = set(zip(adj["src"], adj["dst"]))
    assert all((a, b) in pairs for a, b in zip(roads[:-1], roads[1:]))


@pytest.mark.parametrize("kw", [dict(reverse_tolerance=10.0, stationary_radius_m=0.0, max_route_gps_ratio=None),
                                dict(reverse_tolerance=0.0, stationary_radius_m=10.0, max_route_gps_ratio=None)])
def test_each_cure_alone_removes_most_of_the_loop(porto, kw):
    seg, _, trip, ubodt = porto
    _, before, _ = match(trip, seg, "EPSG:32629", ubodt, **OLD)
    _, after, _ = match(trip, seg, "EPSG:32629", ubodt, **kw)
    assert after["n_revisited"][0] < before["n_revisited"][0] / 2


def test_route_much_longer_than_gps_path_is_a_counted_rejection(porto):
    seg, _, trip, ubodt = porto
    matched, stats, rej = match(trip, seg, "EPSG:32629", ubodt, **{**OLD, "max_route_gps_ratio": 2.0})
    assert len(matched) == 0 and list(rej["reason"]) == ["route_too_long"]
    _, _, _, qc = gather_chunks([matched], [stats], [rej], 1)
    counts = dict(zip(qc["outcome"], qc["count"]))
    assert counts["in"] == 1 == counts["kept"] + counts["rejected:route_too_long"]


def test_quality_rows_in_the_stage_qc(porto):
    seg, _, trip, ubodt = porto
    m, s, r = match(trip, seg, "EPSG:32629", ubodt, **OLD)
    _, _, _, qc = gather_chunks([m], [s], [r], 1)
    counts = dict(zip(qc["outcome"], qc["count"]))
    assert counts["kept_revisiting_a_segment"] == 1 and counts["kept_route_gps_ratio_over_2"] == 1
    assert counts["fixes_dropped:stationary"] == 0
    m, s, r = match(trip, seg, "EPSG:32629", ubodt)
    _, _, _, qc = gather_chunks([m], [s], [r], 1)
    counts = dict(zip(qc["outcome"], qc["count"]))
    assert counts["kept_revisiting_a_segment"] == 0 and counts["fixes_dropped:stationary"] == 13


def test_collapse_stationary_keeps_first_and_last_of_a_standstill():
    # moving 0 -> 100 m, standing at 100 m (jitter 1-3 m) for 5 fixes, then moving on
    x = np.array([0.0, 50, 100, 101, 99, 102, 100.5, 101, 150, 200])
    y = np.zeros_like(x)
    keep = collapse_stationary(x, y, 10.0)
    assert np.flatnonzero(keep).tolist() == [0, 1, 2, 7, 8, 9]
    assert collapse_stationary(x, y, 0.0).all()
    # a trip ending at a standstill keeps its last fix (the trip's end time)
    tail = collapse_stationary(np.array([0.0, 50, 100, 101, 102, 101]), np.zeros(6), 10.0)
    assert np.flatnonzero(tail).tolist() == [0, 1, 2, 5]
    assert count_revisits(np.array([1, 2, 3, 1, 2, 3, 4])) == 3 and count_revisits(np.array([5, 6])) == 0


# ---------------------------------------------------------------------------------------------
# 3. failure reasons, 4. coverage


def sf_trips(sf, **city):
    folder, seg, seg_path, base, _, data_root = sf
    cfg = {**base, **city}
    coverage = city_coverage(cfg, seg_path, data_root) if cfg["bbox"] is None else None
    return ingest_city(cfg, folder, coverage=coverage)


def test_failure_names_the_fixes_without_candidate_and_the_split(sf):
    """With the old, wider bbox the real trip is kept at ingest; FMM matches its first 15 fixes,
    and QC says why it failed: fixes 15-18 have no road within 50 m, the trip is cut after fix 14."""
    _, seg, _, _, ubodt, _ = sf
    trips, _, _ = sf_trips(sf)
    trip = trips[trips["trip_id"] == LEAVING_TRIP].reset_index(drop=True)
    assert len(trip) == 1 and trip["n_points"][0] == 19
    matched, stats, rej = match(trip, seg, SF_CRS, ubodt)
    assert len(matched) == 0
    row = rej.iloc[0]
    assert row["reason"] == "fmm_no_candidate"
    assert parse_index_ranges(row["no_candidate_fixes"]) == [15, 16, 17, 18]
    assert parse_index_ranges(row["split_after"]) == [14]
    assert stats["n_no_candidate"][0] == 4 and stats["matched_points"][0] == 15


def test_trip_leaving_the_network_is_rejected_at_ingest(sf):
    """bbox null: the usable area is the road network plus 250 m (inside the extract's declared
    box plus 250 m), and the trip that leaves it is rejected ``outside_network`` before map
    matching; every trip is still accounted for."""
    folder, seg, seg_path, base, _, data_root = sf
    wide, _, wide_qc = sf_trips(sf)
    trips, rej, qc = sf_trips(sf, bbox=None, filters={**FILTERS, "network_buffer_m": 250})
    assert LEAVING_TRIP in set(wide["trip_id"])
    assert dict(zip(rej["trip_id"], rej["reason"]))[LEAVING_TRIP] == "outside_network"
    counts = dict(zip(qc["outcome"], qc["count"]))
    rejected = sum(v for k, v in counts.items() if k.startswith("rejected:"))
    assert counts["in"] == counts["kept"] + rejected == dict(zip(wide_qc["outcome"], wide_qc["count"]))["in"]
    assert counts["rejected:outside_network"] > 0 and "rejected:outside_bbox" not in counts
    bounds = osm_bounds(data_root / SF_OSM)
    assert bounds == [-122.485, 37.7805, -122.3942, 37.811]  # as the data README says
    coverage = network_coverage(seg, SF_CRS, 250, bounds)
    roads_only = network_coverage(seg, SF_CRS, 250)
    for lon, lat in zip(trips["lon"], trips["lat"]):  # every kept fix is near a road, in the box
        assert coverage.contains(lon, lat).all()
    # the default bbox is the extract's box + 250 m: inside the old configured (wider) box
    box = coverage.bbox_degrees()
    assert SF_WIDE_BBOX[0] < box[0] < box[2] < SF_WIDE_BBOX[2] and SF_WIDE_BBOX[1] < box[1] < box[3] < SF_WIDE_BBOX[3]
    assert box[1] == pytest.approx(37.7805 - 250 / 111_195)
    # beyond the box only stubs of crossing ways are mapped: the road buffer alone covers more
    south = (np.array([-122.45, -122.45]), np.array([37.7762, 37.7760]))  # 500 m south of the box
    assert not coverage.contains(*south).any()
    assert osm_bounds(data_root / "porto/osm/porto_center.osm.bz2") is None  # no <bounds>: roads only
    assert roads_only.bbox_degrees()[1] < box[1]


def test_a_city_without_bbox_needs_a_network(sf):
    with pytest.raises(ValueError, match="bbox or a road network"):
        ingest_city({**sf[3], "bbox": None}, sf[0])


def test_describe_failure_and_index_ranges():
    has = np.array([True, True, True, False, False, True, True, True])
    d = describe_failure(8, [(0, 2), (5, 7)], has, np.arange(8) * 2)  # input-fix index = 2 x matched index
    assert d["cause"] == "fmm_no_candidate" and d["no_candidate_fixes"] == "6,8"
    assert parse_index_ranges(d["split_after"]) == [4, 8] and d["n_unmatched"] == 2
    d = describe_failure(6, [(0, 2), (3, 5)], np.ones(6, dtype=bool), np.arange(6))
    assert d["cause"] == "fmm_disconnected" and d["split_after"] == "2" and d["no_candidate_fixes"] == ""
    assert describe_failure(4, [(0, 3)], np.ones(4, dtype=bool), np.arange(4))["cause"] is None
    assert index_ranges([9, 3, 4, 5]) == "3-5,9" and parse_index_ranges("3-5,9") == [3, 4, 5, 9]
    assert parse_index_ranges("") == [] and index_ranges([]) == ""
