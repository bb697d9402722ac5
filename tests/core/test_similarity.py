"""Most-similar trajectory search (trajzoo.tasks.similarity): ranks, hit ratios, detours,
down-sampling, and that the database carries nothing but content (leak / perturbation checks)."""
from __future__ import annotations

import numpy as np
import pytest

from trajzoo.registry import get_task, task_class
from trajzoo.tasks.similarity import (MostSimilarSearch, _retime, detour, downsample_points, search_metrics,
                                      search_ranks)


def test_ranks_exact_with_pessimistic_ties():
    q = np.array([[0.0, 0.0], [10.0, 0.0]])
    db = np.array([[1.0, 0.0], [0.0, 3.0], [10.0, 1.0], [12.0, 0.0]])
    # q0: truth db0 at distance 1, nothing closer -> 1; q1: truth db3 at 2, db2 at 1 is closer -> 2
    assert search_ranks(q, db, np.array([0, 3])).tolist() == [1, 2]
    # a constant embedding ranks every ground truth last (ties count against the query)
    assert search_ranks(np.zeros((2, 3)), np.zeros((5, 3)), np.array([0, 4])).tolist() == [5, 5]


def test_metrics_exact():
    assert search_metrics(np.array([1, 2, 7, 12])) == {"MeanRank": 5.5, "HR@1": 0.25, "HR@5": 0.5, "HR@10": 0.75}


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="outside the database"):
        search_ranks(np.zeros((1, 2)), np.zeros((2, 2)), np.array([2]))


def _successors(n, edges):
    succ = [[] for _ in range(n)]
    for a, b in edges:
        succ[a].append(b)
    return [np.array(s, dtype=np.int64) for s in succ]


def test_detour_takes_the_other_path_and_retimes_it():
    succ = _successors(7, [(0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 3)])
    roads = np.array([0, 1, 2, 3, 4])
    assert detour(roads, succ, 2, 1, 128).tolist() == [0, 1, 5, 6, 3, 4]
    assert detour(roads, succ, 2, 1, 5) is None  # longer than max_len
    assert detour(roads, succ, 1, 2, 128) is None  # no path from 0 to 3 avoiding 1 and 2
    loop = np.array([0, 1, 5, 1, 2])  # leaves segment 1 and comes back to it
    assert detour(loop, _successors(7, [(0, 1), (1, 5), (5, 1), (1, 2), (1, 6), (6, 1)]), 2, 1, 128) is None
    row = {"trip_id": "a", "roads": roads, "seconds": np.array([0, 10, 20, 30, 40], np.float32),
           "minute_of_day": np.array([600] * 5), "day_of_week": np.array([2] * 5)}
    out = _retime(row, np.array([0, 1, 5, 6, 3, 4]), 2, 1)
    np.testing.assert_allclose(out["seconds"], [0, 10, 10 + 20 / 3, 10 + 40 / 3, 30, 40], rtol=1e-6)
    assert out["minute_of_day"].tolist() == [600] * 6 and out["day_of_week"].tolist() == [2] * 6


def test_downsample_keeps_every_kth_fix_and_the_last():
    row = {"trip_id": "a", "x": np.arange(7.0), "y": np.arange(7.0) * 2, "has_poi": True}
    out = downsample_points(row, 3, ("x", "y"))
    assert out["x"].tolist() == [0, 3, 6] and out["y"].tolist() == [0, 6, 12] and out["has_poi"] is True


def _grid_city(n_trips=30, seed=0):
    """Trips on a ladder graph (two parallel chains with rungs both ways), so detours exist."""
    n = 40  # segments 0..19 top chain, 20..39 bottom chain
    edges = [(i, i + 1) for i in range(19)] + [(20 + i, 21 + i) for i in range(19)]
    edges += [(i, 20 + i + 1) for i in range(19)] + [(20 + i, i + 1) for i in range(19)]
    succ = _successors(n, edges)
    combos = [(chain, start, length) for chain in (0, 20) for start in range(8) for length in range(8, 12)]
    order = np.random.default_rng(seed).permutation(len(combos))[:n_trips]
    rows = []
    for k, i in enumerate(order):
        chain, start, length = combos[i]  # every trip has its own (first, last) segment pair
        roads = np.arange(start, start + length) + chain
        rows.append({"trip_id": f"trip{k}", "roads": roads, "seconds": np.arange(length, dtype=np.float32) * 10,
                     "minute_of_day": np.full(length, 480), "day_of_week": np.zeros(length, np.int64)})
    return rows, succ


def test_search_set_hides_which_database_row_is_whose():
    rows, succ = _grid_city()
    task = MostSimilarSearch(n_queries=10, database_size=25)
    s = task.road_search_set(rows, succ, seed=0)
    assert len(s.queries) == 10 and len(s.database) == 25
    assert [q["trip_id"] for q in s.queries] == [f"q{k}" for k in range(10)]
    assert sorted(r["trip_id"] for r in s.database) == sorted(f"db{k}" for k in range(25))
    assert not np.array_equal(s.truth, np.arange(10))  # shuffled: position says nothing
    by_id = {r["trip_id"]: r for r in rows}
    for q, t, orig in zip(s.queries, s.truth, s.query_trip_ids):
        gt = s.database[t]["roads"]
        assert np.array_equal(q["roads"], by_id[orig]["roads"])  # the query is the trip itself
        assert not np.array_equal(gt, q["roads"])  # its ground truth is perturbed ...
        assert gt[0] == q["roads"][0] and gt[-1] == q["roads"][-1]  # ... a detour between the same ends
    # same seed, same set; another seed, another one
    again = task.road_search_set(rows, succ, seed=0)
    assert np.array_equal(again.truth, s.truth) and again.query_trip_ids == s.query_trip_ids
    assert task.road_search_set(rows, succ, seed=1).query_trip_ids != s.query_trip_ids
    # accounting: in = kept + rejected
    qc = s.qc.set_index("outcome")["count"]
    assert qc["in"] == qc["kept"] + qc.drop(["in", "kept"]).sum()


def test_only_content_finds_the_ground_truth():
    """An embedding of the content (first and last segment, which a detour keeps) finds every
    ground truth; one of what a row carries besides content (its id) finds none above chance."""
    rows, succ = _grid_city(60)
    s = MostSimilarSearch(n_queries=20, database_size=60).road_search_set(rows, succ, seed=0)

    def bag(r):
        return np.array([r["roads"][0], r["roads"][-1]], dtype=float)

    content = search_metrics(search_ranks(np.stack([bag(r) for r in s.queries]),
                                          np.stack([bag(r) for r in s.database]), s.truth))
    assert content == {"MeanRank": 1.0, "HR@1": 1.0, "HR@5": 1.0, "HR@10": 1.0}
    ids = lambda r: np.array([float(int(r["trip_id"].lstrip("qdb")))])  # noqa: E731
    by_id = search_metrics(search_ranks(np.stack([ids(r) for r in s.queries]),
                                        np.stack([ids(r) for r in s.database]), s.truth))
    assert by_id["HR@1"] <= 0.15 and by_id["MeanRank"] > 5 * content["MeanRank"]


def test_registered_as_an_embedding_task_with_its_options():
    assert task_class("sim").input_kind == "embedding"
    t = get_task("sim", n_queries=5, database_size=9, road_perturbation="downsample")
    assert (t.n_queries, t.database_size, t.road_perturbation) == (5, 9, "downsample")
    with pytest.raises(ValueError, match="road_perturbation"):
        get_task("sim", road_perturbation="shuffle")
