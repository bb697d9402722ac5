"""The per-batch (vectorised) map-matching helpers equal their per-trip reference definitions, exactly.

Issue 14: trajzoo's own per-trip Python was moved out of the matching loop (stationary collapse,
GPS path lengths, revisits, failure descriptions, rejection reasons and the tables are computed per
batch on the concatenated fixes and routes with trip offsets). The per-trip definitions stay the
reference: :func:`~trajzoo.mapmatching.quality.collapse_stationary`,
:func:`~trajzoo.mapmatching.quality.path_length_m`, ``np.sum``,
:func:`~trajzoo.mapmatching.quality.count_revisits`, and :func:`~trajzoo.mapmatching.fmm.match_one`
with :func:`~trajzoo.mapmatching.fmm.results_to_tables`. On real San Francisco and Porto slices
(and on the same real fixes cut at random offsets into trips of 0, 1, 2, ... fixes), every value
must be equal, bit for bit.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from trajzoo.mapmatching.fmm import (MatchParams, batch_to_tables, build_ubodt, concat_batches, match_batch, match_one,
                                     prepare_matching, project_points, results_to_tables, STATS_COLUMNS)
from trajzoo.mapmatching.quality import (collapse_stationary, collapse_stationary_batch, count_revisits,
                                         count_revisits_batch, describe_failure, describe_failures_batch, index_ranges,
                                         index_ranges_batch, path_length_m, path_lengths_batch, running_max_batch,
                                         segment_sums)

FILTERS = {"min_points": 5, "max_points": 400, "max_speed_mps": 50}
CITIES = {
    "sanfrancisco": ({"trajectories": {"format": "cabspotting",
                                       "path": "sanfrancisco/cabspottingdata_north_14d.tar.xz"},
                      "bbox": [-122.49, 37.775, -122.39, 37.815], "filters": FILTERS, "caps": {"max_trips": 1000}},
                     "EPSG:32610", "sanfrancisco/osm/sf_north.osm.bz2", 1500.0),
    "porto": ({"trajectories": {"format": "porto_csv", "path": "porto/train.csv.xz"},
               "bbox": [-8.70, 41.13, -8.54, 41.195], "filters": FILTERS, "caps": {"max_trips": 400}},
              "EPSG:32629", "porto/osm/porto_center.osm.bz2", 1000.0),
}


@pytest.fixture(scope="module", params=list(CITIES))
def city(request, real_ingest):
    """``(name, trips, x, y, t, offsets)``: a real slice, its fixes projected and concatenated."""
    cfg, crs, _, _ = CITIES[request.param]
    trips, _, _ = real_ingest(cfg)
    x, y = project_points(np.concatenate(trips["lon"].to_numpy()), np.concatenate(trips["lat"].to_numpy()), crs)
    t = np.concatenate(trips["timestamps"].to_numpy()).astype(np.float64)
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in trips["lon"]])])
    return request.param, trips, x, y, t, offsets


def random_offsets(n_fixes: int, seed: int) -> np.ndarray:
    """Cuts of ``0..n_fixes`` into 'trips' of 0, 1, 2, ... up to about 60 fixes (the short trips
    and empty ones that a real slice lacks)."""
    rng = np.random.default_rng(seed)
    lengths = rng.choice([0, 1, 2, 3, 4, 7, 20, 60], size=n_fixes)
    cuts = np.cumsum(lengths)
    return np.concatenate([[0], cuts[cuts < n_fixes], [n_fixes]])


def per_trip(fn, offsets, *arrays):
    return [fn(*(a[p:q] for a in arrays)) for p, q in zip(offsets[:-1], offsets[1:])]


def test_slices_cover_the_cases(city):
    """Standstills to collapse, and (Porto) trips longer than 129 fixes: pairwise sums in halves."""
    name, trips, x, y, _, offsets = city
    dropped = sum(int((~k).sum()) for k in per_trip(lambda a, b: collapse_stationary(a, b, 10.0), offsets, x, y))
    assert len(trips) > 200 and dropped > 20
    assert np.diff(offsets).max() > (130 if name == "porto" else 20)


@pytest.mark.parametrize("radius", [10.0, 35.0, 0.0])
def test_collapse_stationary_batch_equals_per_trip(city, radius):
    _, _, x, y, _, offsets = city
    for off in (offsets, random_offsets(len(x), 1)):
        ref = np.concatenate(per_trip(lambda a, b: collapse_stationary(a, b, radius), off, x, y))
        assert np.array_equal(collapse_stationary_batch(x, y, off, radius), ref)
    # a batch that starts inside the slice: its own offsets from 0
    lo, hi = int(offsets[7]), int(offsets[-4])
    sub = offsets[7:-3] - lo
    ref = np.concatenate(per_trip(lambda a, b: collapse_stationary(a, b, radius), sub, x[lo:hi], y[lo:hi]))
    assert np.array_equal(collapse_stationary_batch(x[lo:hi], y[lo:hi], sub, radius), ref)


def test_collapse_stationary_batch_on_the_radius_and_bad_offsets():
    """A fix exactly on the radius (6-8-10 m) is a standstill fix, as in the per-trip walk."""
    x = np.array([0.0, 6.0, 50.0, 0.0, 6.0, 6.0, 100.0])
    y = np.array([0.0, 8.0, 0.0, 0.0, 8.0, 8.0, 0.0])
    off = np.array([0, 3, 7])
    ref = np.concatenate(per_trip(lambda a, b: collapse_stationary(a, b, 10.0), off, x, y))
    assert np.array_equal(collapse_stationary_batch(x, y, off, 10.0), ref)
    assert ref.tolist() == [True, True, True, True, False, True, True]
    for bad in ([0, 3], [1, 7], [0, 5, 3, 7]):
        with pytest.raises(ValueError, match="offsets"):
            collapse_stationary_batch(x, y, np.array(bad), 10.0)


def test_path_lengths_and_segment_sums_equal_numpy_per_run(city):
    _, _, x, y, _, offsets = city
    rng = np.random.default_rng(2)
    # every trip's fixes, and random runs inside trips (0, 1, 2, ... fixes)
    a = rng.integers(offsets[:-1], offsets[1:])
    b = rng.integers(a, offsets[1:] + 1)
    starts, stops = np.concatenate([offsets[:-1], a]), np.concatenate([offsets[1:], b])
    ref = np.array([path_length_m(x[p:q], y[p:q]) for p, q in zip(starts, stops)])
    new = path_lengths_batch(x, y, starts, stops)
    assert new.dtype == np.float64 and np.array_equal(new, ref)
    steps = np.hypot(np.diff(x), np.diff(y))
    lengths = np.minimum(np.arange(len(offsets) - 1) % 400, len(steps) - offsets[:-1])
    ref = np.array([steps[p:p + n].sum() for p, n in zip(offsets[:-1], lengths)])
    assert np.array_equal(segment_sums(steps, offsets[:-1], lengths), ref)
    assert (lengths > 128).any() and (lengths == 0).any()


@pytest.fixture(scope="module")
def matched(city, real_road_network, tmp_path_factory):
    """The slice matched twice: :func:`match_one` per trip (the reference) and :func:`match_batch`."""
    name, trips, x, y, t, offsets = city
    _, crs, osm, delta = CITIES[name]
    seg, _ = real_road_network(osm, crs)
    params = MatchParams(ubodt_delta=delta)
    ubodt = tmp_path_factory.mktemp(f"ubodt_{name}")
    build_ubodt(seg, params, ubodt)
    setup = prepare_matching(seg, params, ubodt, require_ubodt=True)
    ref = [match_one(setup.matcher, x[p:q], y[p:q], t[p:q], params, setup.tree)
           for p, q in zip(offsets[:-1], offsets[1:])]
    new = match_batch(setup.matcher, x, y, t, offsets, params, setup.tree)
    return setup, ref, new


def test_slices_match_with_every_outcome(matched):
    _, ref, _ = matched
    reasons = {r["reason"] for r in ref}
    assert None in reasons and "fmm_no_candidate" in reasons and len(reasons) >= 3
    assert any(r["n_revisited"] > 0 for r in ref) and any(r["n_matched_pieces"] > 1 for r in ref)


def test_match_batch_equals_match_one(matched):
    _, ref, new = matched
    for col in STATS_COLUMNS:
        want = [r[col] for r in ref]
        got = new[col].tolist()
        assert len(got) == len(want), col
        if col in ("route_m", "gps_m", "route_gps_ratio"):
            assert np.array_equal(np.array(got), np.array(want), equal_nan=True), col
        else:
            assert got == want, col
    kept = [r for r in ref if r["reason"] is None]
    assert new["n_segments"].tolist() == [len(r["roads"]) for r in kept]
    assert np.array_equal(new["roads"], np.concatenate([r["roads"] for r in kept]))
    assert np.array_equal(new["enter_times"], np.concatenate([r["enter_times"] for r in kept]))
    assert np.array_equal(new["end_time"], np.array([r["end_time"] for r in kept]))


def test_batch_tables_equal_the_per_trip_tables(city, matched):
    """:func:`batch_to_tables` of the batch columns (whole, and in consecutive sub-batches joined by
    :func:`concat_batches`) equals :func:`results_to_tables` of the per-trip dicts: frames and Arrow schemas."""
    _, trips, x, y, t, offsets = city
    setup, ref, new = matched
    want = results_to_tables(trips, ref)
    cuts = [0, 1, 2, 50, 51, len(trips) // 2, len(trips)]
    parts = [match_batch(setup.matcher, x[offsets[a]:offsets[b]], y[offsets[a]:offsets[b]], t[offsets[a]:offsets[b]],
                         offsets[a:b + 1] - offsets[a], setup.params, setup.tree) for a, b in zip(cuts[:-1], cuts[1:])]
    for cols in (new, concat_batches(parts)):
        for got, exp in zip(batch_to_tables(trips, cols), want):
            arrays = [c for c in ("roads", "enter_times") if c in exp.columns]
            pd.testing.assert_frame_equal(got.drop(columns=arrays), exp.drop(columns=arrays), check_exact=True)
            for c in arrays:
                assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(got[c], exp[c])), c
            got_arrow, exp_arrow = (pa.Table.from_pandas(df, preserve_index=False) for df in (got, exp))
            assert got_arrow.equals(exp_arrow) and got_arrow.schema.equals(exp_arrow.schema, check_metadata=True)
    empty = batch_to_tables(trips.iloc[:0], concat_batches([]))
    for got, exp in zip(empty, results_to_tables(trips.iloc[:0], [])):
        assert list(got.columns) == list(exp.columns) and (got.dtypes == exp.dtypes).all()


def test_count_revisits_batch_equals_per_route(matched):
    _, ref, _ = matched
    routes = [np.asarray(r["roads"]) for r in ref if r["roads"] is not None]
    lengths = np.array([len(r) for r in routes] + [0])  # an empty route too
    flat = np.concatenate(routes)
    want = [count_revisits(r) for r in routes] + [0]
    assert any(w > 0 for w in want)
    assert count_revisits_batch(flat, lengths).tolist() == want
    far = flat.copy()
    far[0] = 2 ** 61  # ids too far apart for the one-key sort: the lexsort path
    want_far = [count_revisits(r) for r in np.split(far, np.cumsum(lengths)[:-1])]
    assert count_revisits_batch(far, lengths).tolist() == want_far


def test_running_max_batch_equals_per_route(matched):
    """On the real entry times of the kept routes, reversed and shuffled within each route (real
    matched times hardly ever go back, so the running maximum has work to do)."""
    _, _, new = matched
    lengths = np.append(new["n_segments"], 0)
    routes = np.split(new["enter_times"], np.cumsum(lengths)[:-1])
    rng = np.random.default_rng(3)
    for shaped in ([r[::-1] for r in routes], [rng.permutation(r) for r in routes], routes):
        flat = np.concatenate(shaped)
        want = np.concatenate([np.maximum.accumulate(r) if len(r) else r for r in shaped])
        got = running_max_batch(flat, lengths)
        assert np.array_equal(got, want) and got is not flat
    assert not np.array_equal(np.concatenate([r[::-1] for r in routes]),
                              running_max_batch(np.concatenate([r[::-1] for r in routes]), lengths))


def test_failure_descriptions_batch_equal_per_trip():
    """Random pieces, candidates and input-fix indices (small synthetic trips of 0..12 fixes)."""
    rng = np.random.default_rng(4)
    lengths = rng.integers(0, 13, size=400)
    piece_trip, piece_a, piece_b, ref = [], [], [], []
    has = rng.random(int(lengths.sum())) < 0.8
    orig = np.concatenate([np.cumsum(rng.integers(1, 4, size=n)) for n in lengths])
    off = np.concatenate([[0], np.cumsum(lengths)])
    for k, n in enumerate(lengths.tolist()):
        cuts = np.sort(rng.choice(np.arange(n + 1), size=min(n + 1, int(rng.integers(0, 5))), replace=False))
        pieces = [(int(a), int(b) - 1) for a, b in zip(cuts[:-1], cuts[1:]) if rng.random() < 0.7]
        pieces = pieces[::-1]  # any order
        piece_trip += [k] * len(pieces)
        piece_a += [a for a, _ in pieces]
        piece_b += [b for _, b in pieces]
        ref.append(describe_failure(n, pieces, has[off[k]:off[k + 1]], orig[off[k]:off[k + 1]]))
    got = describe_failures_batch(lengths, np.array(piece_trip, dtype=int), np.array(piece_a, dtype=int),
                                  np.array(piece_b, dtype=int), has, orig)
    for key in ("no_candidate_fixes", "n_no_candidate", "split_after", "n_unmatched", "cause"):
        assert got[key].tolist() == [r[key] for r in ref], key
    assert {r["cause"] for r in ref} == {None, "fmm_no_candidate", "fmm_disconnected"}
    assert any("-" in r["split_after"] for r in ref) and any("," in r["no_candidate_fixes"] for r in ref)


def test_index_ranges_batch_equals_per_group():
    rng = np.random.default_rng(5)
    groups = [np.unique(rng.integers(0, 30, size=int(rng.integers(0, 12)))) for _ in range(300)]
    values = np.concatenate(groups)
    owner = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    assert index_ranges_batch(values, owner, len(groups)).tolist() == [index_ranges(g) for g in groups]
    assert index_ranges_batch(np.zeros(0, dtype=int), np.zeros(0, dtype=int), 2).tolist() == ["", ""]
