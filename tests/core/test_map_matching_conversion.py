"""The fast conversion of fastmm's results (issue 14) gives exactly the tables of the old one.

``_reference_*`` below is the conversion as it was before issue 14 (``trajzoo.mapmatching.fmm`` at
commit 4c92869: every attribute of every fastmm result object read, numpy per trip), kept here
only as the reference. On a real San Francisco slice (kept trips, FMM failures, other rejections,
stationary fixes), every column of the matched, stats and rejections tables must be equal,
single-process and with worker processes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from trajzoo.mapmatching.fmm import (MatchParams, build_matcher, match_one, match_trips, results_to_tables,
                                     project_points)
from trajzoo.mapmatching.quality import collapse_stationary, describe_failure, path_length_m, route_quality

SF = {"trajectories": {"format": "cabspotting", "path": "sanfrancisco/cabspottingdata_north_14d.tar.xz"},
      "bbox": [-122.49, 37.775, -122.39, 37.815],
      "filters": {"min_points": 5, "max_points": 400, "max_speed_mps": 50}, "caps": {"max_trips": 1000}}
CRS = "EPSG:32610"


def _reference_walk_piece(subtrajectory):
    roads, times = [], []
    end_time = float("nan")
    first_d, last_d = None, 0.0
    for seg in subtrajectory.segments:
        for edge in seg.edges:
            points = edge.points
            if not points:
                continue
            if first_d is None:
                first_d = float(points[0].cumulative_distance)
            last = points[-1]
            last_d = float(last.cumulative_distance)
            end_time = float(last.t)
            edge_id = edge.edge_id
            if roads and roads[-1] == edge_id:
                continue
            roads.append(int(edge_id))
            times.append(float(points[0].t))
    return roads, times, end_time, max(last_d - (first_d or 0.0), 0.0)


def _reference_match_one(matcher, x, y, t, params, tree):
    import fastmm

    n = len(x)
    keep = collapse_stationary(x, y, params.stationary_radius_m)
    orig = np.flatnonzero(keep)
    xs, ys, ts = np.asarray(x)[keep], np.asarray(y)[keep], np.asarray(t)[keep]
    traj = fastmm.Trajectory.from_xyt_tuples(np.column_stack([xs, ys, ts]).tolist())
    result = matcher.match(traj, max_candidates=params.max_candidates,
                           candidate_search_radius=params.candidate_search_radius,
                           gps_error=params.gps_error, reverse_tolerance=params.reverse_tolerance)
    subs = list(result.subtrajectories)
    ok = [s for s in subs if s.error_code == fastmm.MatchErrorCode.SUCCESS]
    errors = sorted({s.error_code.name for s in subs if s.error_code != fastmm.MatchErrorCode.SUCCESS})
    out = {"n_points": n, "n_stationary_dropped": int(n - len(orig)), "n_subtrajectories": len(subs),
           "n_matched_pieces": len(ok), "matched_points": 0, "n_unmatched": 0, "n_no_candidate": 0,
           "no_candidate_fixes": "", "split_after": "", "route_m": float("nan"), "gps_m": float("nan"),
           "route_gps_ratio": float("nan"), "n_revisited": -1, "error_codes": ",".join(errors),
           "roads": None, "enter_times": None, "end_time": None, "reason": None}
    pieces = [(int(s.start_index), int(s.end_index)) for s in ok]
    cause = None
    if len(ok) != 1 or pieces[0] != (0, len(orig) - 1):
        near = tree.query(shapely.points(xs, ys), predicate="dwithin",
                          distance=float(params.candidate_search_radius))[0]
        has_candidate = np.zeros(len(orig), dtype=bool)
        has_candidate[near] = True
        failure = describe_failure(len(orig), pieces, has_candidate, orig)
        out.update({k: failure[k] for k in ("no_candidate_fixes", "n_no_candidate", "split_after", "n_unmatched")})
        cause = failure["cause"]
    if not ok:
        out["reason"] = cause or "fmm_disconnected"
        return out
    best = max(ok, key=lambda s: (s.end_index - s.start_index, -s.start_index))
    a, b = int(best.start_index), int(best.end_index)
    covered = int(orig[b] - orig[a] + 1)
    out["matched_points"] = covered
    roads, times, end_time, route_m = _reference_walk_piece(best)
    out.update(route_quality(route_m, path_length_m(xs[a:b + 1], ys[a:b + 1]), np.asarray(roads, dtype=np.int64)))
    if covered / n < params.min_matched_fraction:
        out["reason"] = cause or "fmm_disconnected"
    elif len(roads) < params.min_segments:
        out["reason"] = "too_few_segments"
    elif len(roads) > params.max_segments:
        out["reason"] = "too_many_segments"
    elif params.max_route_gps_ratio is not None and out["route_gps_ratio"] > params.max_route_gps_ratio:
        out["reason"] = "route_too_long"
    else:
        times = np.maximum.accumulate(np.asarray(times, dtype=np.float64))
        out.update(roads=np.asarray(roads, dtype=np.int64), enter_times=times, end_time=max(end_time, float(times[-1])))
    return out


def _reference_match_trips(trips, segments, params, ubodt_dir):
    x, y = project_points(np.concatenate(trips["lon"].to_numpy()), np.concatenate(trips["lat"].to_numpy()), CRS)
    t = np.concatenate(trips["timestamps"].to_numpy()).astype(np.float64)
    bounds = np.cumsum([0] + [len(a) for a in trips["lon"]])
    net, matcher = build_matcher(segments, params, ubodt_dir)
    tree = shapely.STRtree(shapely.from_wkt(segments["geometry_wkt"].to_numpy()))
    results = [_reference_match_one(matcher, x[a:b], y[a:b], t[a:b], params, tree)
               for a, b in zip(bounds[:-1], bounds[1:])]
    return results_to_tables(trips, results)  # the table assembly did not change; the conversion did


def assert_tables_equal(new: pd.DataFrame, ref: pd.DataFrame) -> None:
    """Same columns, dtypes and values; array cells (roads, enter_times) element-wise, exactly."""
    assert list(new.columns) == list(ref.columns)
    assert len(new) == len(ref)
    for col in ref.columns:
        assert new[col].dtype == ref[col].dtype, col
        if ref[col].dtype == object and len(ref) and isinstance(ref[col].iloc[0], np.ndarray):
            for a, b in zip(new[col], ref[col]):
                assert a.dtype == b.dtype and np.array_equal(a, b), col
        else:
            pd.testing.assert_series_equal(new[col], ref[col], check_exact=True, obj=col)


@pytest.fixture(scope="module")
def sf(real_ingest, real_road_network, tmp_path_factory):
    seg, _ = real_road_network("sanfrancisco/osm/sf_north.osm.bz2", CRS)
    trips, _, _ = real_ingest(SF)
    params = MatchParams(ubodt_delta=1500)
    ubodt = tmp_path_factory.mktemp("ubodt")
    return seg, trips, params, ubodt, _reference_match_trips(trips, seg, params, ubodt)


def test_slice_covers_every_outcome(sf):
    """The slice is a real test: kept trips, FMM failures of both kinds, other rejections, standstills."""
    _, trips, _, _, (matched, stats, rej) = sf
    assert len(trips) >= 150 and len(matched) > 0.5 * len(trips)
    assert "fmm_no_candidate" in set(rej["reason"]) and len(set(rej["reason"])) >= 2
    assert (stats["n_stationary_dropped"] > 0).sum() > 10 and (stats["n_revisited"] > 0).any()


@pytest.mark.parametrize("workers", [1, 2])
def test_fast_conversion_equals_reference(sf, workers):
    seg, trips, params, ubodt, ref = sf
    new = match_trips(trips, seg, CRS, params, ubodt, workers=workers, chunk_size=64, progress=False)
    for n, r in zip(new, ref):
        assert_tables_equal(n, r)


def test_match_one_with_and_without_prebuilt_rows(sf):
    """``match_one(xyt=...)`` (the chunk's rows built once) equals ``match_one`` building its own."""
    seg, trips, params, ubodt, _ = sf
    net, matcher = build_matcher(seg, params, ubodt)
    for _, trip in trips.iloc[:40].iterrows():
        x, y = project_points(trip["lon"], trip["lat"], CRS)
        t = trip["timestamps"].astype(np.float64)
        rows = np.column_stack([x, y, t]).tolist()
        a, b = match_one(matcher, x, y, t, params), match_one(matcher, x, y, t, params, xyt=rows)
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], np.ndarray):
                assert np.array_equal(a[k], b[k])
            else:
                assert a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]), k
