"""FMM map matching on a real San Francisco slice: connected paths, ordered times, accounting."""
from __future__ import annotations

import numpy as np
import pytest

from trajzoo.ingest import ingest_city
from trajzoo.mapmatching.fmm import MatchParams, match_trips

SF = {"trajectories": {"format": "cabspotting", "path": "sanfrancisco/cabspottingdata_north_14d.tar.xz"},
      "bbox": [-122.49, 37.775, -122.39, 37.815],
      "filters": {"min_points": 5, "max_points": 400, "max_speed_mps": 50}, "caps": {"max_trips": 120}}


@pytest.fixture(scope="module")
def sf(data_root, real_road_network, tmp_path_factory):
    seg, adj = real_road_network("sanfrancisco/osm/sf_north.osm.bz2", "EPSG:32610")
    trips, _, _ = ingest_city(SF, data_root)
    return seg, adj, trips, tmp_path_factory.mktemp("ubodt")


def test_matching_gives_connected_timed_paths(sf):
    seg, adj, trips, ubodt = sf
    params = MatchParams(ubodt_delta=2000)
    matched, stats, rej = match_trips(trips, seg, "EPSG:32610", params, ubodt, workers=1, progress=False)
    assert len(matched) + len(rej) == len(trips) == len(stats)
    assert len(matched) > 0.7 * len(trips)
    pairs = set(zip(adj["src"], adj["dst"]))
    for roads, times, end in zip(matched["roads"], matched["enter_times"], matched["end_time"]):
        assert all((a, b) in pairs for a, b in zip(roads[:-1], roads[1:])), "consecutive segments not adjacent"
        assert np.all(np.diff(times) >= 0) and end >= times[-1]
        assert roads.min() >= 0 and roads.max() < len(seg)
    first = trips.set_index("trip_id").loc[matched["trip_id"].iloc[0]]
    assert matched["enter_times"].iloc[0][0] >= first["timestamps"][0] - 1
    assert set(rej["reason"]) <= {"fmm_no_candidate", "fmm_disconnected", "too_few_segments", "too_many_segments",
                                  "route_too_long"}
    # every FMM failure says why: the fixes without a candidate, or where the trip was split
    fmm = rej[rej["reason"].str.startswith("fmm_")]
    assert len(fmm) and ((fmm["no_candidate_fixes"] != "") | (fmm["split_after"] != "")).all()
    assert (fmm["reason"] == "fmm_no_candidate").eq(fmm["no_candidate_fixes"] != "").all()


def test_parallel_matching_equals_serial(sf):
    seg, adj, trips, ubodt = sf
    params = MatchParams(ubodt_delta=2000)
    one, _, _ = match_trips(trips, seg, "EPSG:32610", params, ubodt, workers=1, progress=False)
    two, _, _ = match_trips(trips, seg, "EPSG:32610", params, ubodt, workers=2, chunk_size=16, progress=False)
    assert one["trip_id"].tolist() == two["trip_id"].tolist()
    assert all(np.array_equal(a, b) for a, b in zip(one["roads"], two["roads"]))


def test_unknown_match_parameter_is_rejected():
    with pytest.raises(ValueError, match="gps_eror"):
        MatchParams.from_dict({"gps_eror": 10})
