"""Most-similar trajectory search (SIM), scored on the embeddings of any model without fine-tuning.

Protocol of START (Jiang et al., ICDE 2023, arXiv 2211.09510, Sec. "Most Similar Trajectory
Search", after t2vec): from the TEST split, draw a query set Q and a database D. Each query q
has one ground truth in D, a perturbed version q' of itself: a *detour* (a sub-path of q replaced
by another path between the same two road segments) for road-sequence models, a *down-sampled*
copy (every k-th GPS fix) for GPS-point models. The rest of D are other test trips, unperturbed.
Every trip is embedded by the model as it is (no fine-tuning, no trained head); D is ranked by
Euclidean distance to q's embedding, and

    rank(q) = 1 + #{x in D, x != q' : ||e(x) - e(q)|| <= ||e(q') - e(q)||}     (ties count against q)
    Mean Rank = mean_q rank(q);   HR@k = mean_q [rank(q) <= k],  k = 1, 5, 10.

Leak guard: the database is shuffled with the run's seed and every row gets an anonymous id
(``db<k>``), queries ``q<k>``; nothing in a row tells which query it belongs to but its content
(``tests/core/test_similarity.py`` checks by perturbation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trajzoo.qc import stage_counts

#: rank cut-offs of the hit ratios
HIT_KS = (1, 5, 10)


def search_ranks(query: np.ndarray, database: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Rank of each query's ground truth in the database by Euclidean distance (START Sec. V).

    Args:
        query: ``(Q, d)`` query embeddings.
        database: ``(N, d)`` database embeddings.
        truth: ``(Q,)`` int index into ``database`` of each query's ground truth.

    Returns:
        ``(Q,)`` int64 ranks, 1 = the ground truth is strictly nearest; a database trip at the
        same distance as the ground truth counts as ranked before it (pessimistic ties, so a
        constant embedding scores rank N, not 1).

    Raises:
        ValueError: mismatched shapes or a truth index out of range.
    """
    query, database = np.asarray(query, dtype=np.float64), np.asarray(database, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int64)
    if query.ndim != 2 or database.ndim != 2 or query.shape[1] != database.shape[1] or len(truth) != len(query):
        raise ValueError(f"search_ranks: query {query.shape}, database {database.shape}, truth {truth.shape}")
    if len(truth) and (truth.min() < 0 or truth.max() >= len(database)):
        raise ValueError("search_ranks: a ground-truth index is outside the database")
    d = np.sqrt(((query[:, None, :] - database[None, :, :]) ** 2).sum(-1))  # (Q, N)
    d_true = d[np.arange(len(query)), truth]
    closer = (d <= d_true[:, None]).sum(axis=1) - 1  # minus the ground truth itself
    return (1 + closer).astype(np.int64)


def search_metrics(ranks: np.ndarray) -> dict[str, float]:
    """``{"MeanRank", "HR@1", "HR@5", "HR@10"}`` of ground-truth ranks (HR as a fraction)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {"MeanRank": float(ranks.mean())}
    out.update({f"HR@{k}": float((ranks <= k).mean()) for k in HIT_KS})
    return out


def detour(roads: np.ndarray, successors: list[np.ndarray], start: int, length: int, max_len: int
           ) -> np.ndarray | None:
    """Replace ``roads[start:start + length]`` by the shortest other path (fewest segments) from
    ``roads[start - 1]`` to ``roads[start + length]`` that avoids every replaced segment.

    Args:
        roads: ``(n,)`` segment ids of a matched trip (1 <= start, start + length <= n - 1).
        successors: per segment id, the ids it connects to (the road graph's transitions).
        start, length: the replaced sub-path.
        max_len: longest result allowed.

    Returns:
        The detoured ``(m,)`` id sequence, or None (no such path, longer than ``max_len``, or a
        replaced sub-path that is a loop: ``roads[start - 1] == roads[start + length]``, a trip
        that comes back to the segment it left, has no other path between two different ends).
    """
    a, b = int(roads[start - 1]), int(roads[start + length])
    if a == b:
        return None
    banned = set(int(r) for r in roads[start:start + length]) - {a, b}
    limit = max_len - (len(roads) - length)
    prev = {a: -1}
    frontier = [a]
    depth = 0
    while frontier and b not in prev and depth <= limit:
        nxt = []
        for u in frontier:
            for v in successors[u]:
                v = int(v)
                if v in banned or v in prev:
                    continue
                if u == a and v == int(roads[start]) and length > 0:
                    continue
                prev[v] = u
                nxt.append(v)
        frontier = nxt
        depth += 1
    if b not in prev:
        return None
    path = []
    u = prev[b]
    while u != a:
        path.append(u)
        u = prev[u]
    out = np.concatenate([roads[:start], np.array(path[::-1], dtype=np.int64), roads[start + length:]])
    if len(out) > max_len or np.array_equal(out, roads):
        return None
    return out.astype(np.int64)


def _retime(row: dict, new_roads: np.ndarray, start: int, length: int) -> dict:
    """Times of a detoured road row: kept segments keep theirs; the inserted ones are spread
    linearly (in time) between the segment before the detour and the one after it."""
    sec = np.asarray(row["seconds"], dtype=np.float64)
    n_new = len(new_roads) - (len(sec) - length)
    t0, t1 = sec[start - 1], sec[start + length]
    inserted = t0 + (t1 - t0) * np.arange(1, n_new + 1) / (n_new + 1)
    seconds = np.concatenate([sec[:start], inserted, sec[start + length:]]).astype(np.float32)
    mod0 = int(row["minute_of_day"][start - 1])
    mod_ins = ((mod0 + (inserted - t0) // 60) % 1440).astype(np.int64)
    dow_ins = np.full(n_new, int(row["day_of_week"][start - 1]), dtype=np.int64)
    return {"trip_id": row["trip_id"], "roads": new_roads, "seconds": seconds,
            "minute_of_day": np.concatenate([row["minute_of_day"][:start], mod_ins, row["minute_of_day"][start + length:]]),
            "day_of_week": np.concatenate([row["day_of_week"][:start], dow_ins, row["day_of_week"][start + length:]])}


def downsample_points(row: dict, step: int, columns) -> dict:
    """Every ``step``-th GPS fix of a point row (fixes 0, step, 2 step, ... and the last one)."""
    n = len(row["x"])
    keep = np.unique(np.concatenate([np.arange(0, n, step), [n - 1]]))
    return {k: (np.asarray(v)[keep] if k in columns else v) for k, v in row.items()}


def downsample_roads(row: dict, step: int) -> dict:
    """Every ``step``-th road segment of a road row (and the last one), with their times."""
    n = len(row["roads"])
    keep = np.unique(np.concatenate([np.arange(0, n, step), [n - 1]]))
    return {k: (np.asarray(v)[keep] if k != "trip_id" else v) for k, v in row.items()}


@dataclass
class SearchSet:
    """Queries and database of one city's most-similar search.

    Attributes:
        queries: rows (the model's view) of the Q query trips, ids ``q<k>``.
        database: N rows, shuffled, ids ``db<k>``: the Q perturbed queries and N - Q other test trips.
        truth: ``(Q,)`` index into ``database`` of each query's perturbed self.
        query_trip_ids: the original trip id of each query. qc: eligibility accounting.
    """

    queries: list[dict]
    database: list[dict]
    truth: np.ndarray
    query_trip_ids: list[str]
    qc: pd.DataFrame


class MostSimilarSearch:
    """SIM: most-similar trajectory search on the test split (START protocol, module docstring).

    Args:
        n_queries: |Q| (fewer when fewer test trips are eligible).
        database_size: |D| including the Q ground truths (capped by the test split).
        road_perturbation: ``detour`` (START) or ``downsample`` for road-sequence models.
        point_perturbation: ``downsample`` for GPS-point models.
        detour_fraction: share of a trip's segments replaced by the detour.
        downsample_step: k of the down-sampling (every k-th fix / segment).
        min_length: fewest segments (road) or fixes (points) a query needs.
        max_segments: longest detoured road sequence (the map-matching cap).
    """

    name = "sim"
    kind = "retrieval"
    #: served by every model: scored on embeddings, no fine-tuning (see :mod:`trajzoo.evaluation`)
    input_kind = "embedding"
    metric_names = ("MeanRank", "HR@1", "HR@5", "HR@10")

    def __init__(self, n_queries: int = 100, database_size: int = 1000, road_perturbation: str = "detour",
                 point_perturbation: str = "downsample", detour_fraction: float = 0.3, downsample_step: int = 2,
                 min_length: int = 6, max_segments: int = 128):
        if road_perturbation not in ("detour", "downsample") or point_perturbation != "downsample":
            raise ValueError(f"sim: road_perturbation must be detour or downsample, point_perturbation downsample; "
                             f"got {road_perturbation!r}, {point_perturbation!r}")
        if not 0 < detour_fraction < 1 or downsample_step < 2 or n_queries < 1 or database_size < n_queries:
            raise ValueError("sim: need 0 < detour_fraction < 1, downsample_step >= 2, 1 <= n_queries <= database_size")
        self.n_queries, self.database_size = n_queries, database_size
        self.road_perturbation, self.point_perturbation = road_perturbation, point_perturbation
        self.detour_fraction, self.downsample_step = detour_fraction, downsample_step
        self.min_length, self.max_segments = min_length, max_segments

    def _assemble(self, rows: list[dict], perturb, seed: int, length_of) -> SearchSet:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(rows))
        queries, truths, used = [], [], set()
        n_short = n_no_detour = 0
        for i in order:
            if len(queries) >= self.n_queries:
                break
            if length_of(rows[i]) < self.min_length:
                n_short += 1
                continue
            p = perturb(rows[i], rng)
            if p is None:
                n_no_detour += 1
                continue
            queries.append(rows[i])
            truths.append(p)
            used.add(int(i))
        if not queries:
            raise ValueError("sim: no eligible query trip in the test split")
        others = [rows[i] for i in order if int(i) not in used][: max(0, self.database_size - len(queries))]
        db = truths + others
        perm = rng.permutation(len(db))
        database = [dict(db[j], trip_id=f"db{k}") for k, j in enumerate(perm)]
        where = np.empty(len(db), dtype=np.int64)
        where[perm] = np.arange(len(db))
        truth = where[: len(queries)]
        qrows = [dict(q, trip_id=f"q{k}") for k, q in enumerate(queries)]
        reasons = ["too_short_for_sim"] * n_short + ["no_detour"] * n_no_detour
        qc = stage_counts("task:sim", len(queries) + len(reasons), len(queries),
                          np.array(reasons, dtype=object)).assign(split="test")
        return SearchSet(qrows, database, truth, [str(q["trip_id"]) for q in queries], qc)

    def road_search_set(self, test_rows: list[dict], successors: list[np.ndarray], seed: int) -> SearchSet:
        """Queries and database of road-segment rows (:func:`trajzoo.data.city.trip_rows` of the
        test split); ``successors[i]``: segment ids that follow segment i (the road graph)."""
        def perturb(row, rng):
            roads = np.asarray(row["roads"], dtype=np.int64)
            if self.road_perturbation == "downsample":
                return downsample_roads(row, self.downsample_step)
            n = len(roads)
            length = max(1, int(round(self.detour_fraction * n)))
            starts = rng.permutation(np.arange(1, n - length))
            for s in starts[:5]:
                new = detour(roads, successors, int(s), length, self.max_segments)
                if new is not None:
                    return _retime(row, new, int(s), length)
            return None
        return self._assemble(test_rows, perturb, seed, lambda r: len(r["roads"]))

    def point_search_set(self, test_rows: list[dict], seed: int) -> SearchSet:
        """Queries and database of GPS-point rows (:func:`trajzoo.data.points.point_rows`)."""
        from trajzoo.data.points import POINT_LIST_COLUMNS

        return self._assemble(test_rows, lambda row, rng: downsample_points(row, self.downsample_step,
                                                                            POINT_LIST_COLUMNS),
                              seed, lambda r: len(r["x"]))

    def metrics(self, query_emb: np.ndarray, database_emb: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        """Mean Rank, HR@1, HR@5, HR@10 (:func:`search_ranks`, :func:`search_metrics`)."""
        return search_metrics(search_ranks(query_emb, database_emb, truth))


def successors_of(graph) -> list[np.ndarray]:
    """Per segment id, the ids it leads to, from a :class:`~trajzoo.data.batch.RoadGraph`'s
    ``edge_index`` ``(2, E)``."""
    src, dst = graph.edge_index.cpu().numpy()
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    bounds = np.searchsorted(src, np.arange(graph.num_segments + 1))
    return [dst[bounds[i]:bounds[i + 1]] for i in range(graph.num_segments)]
