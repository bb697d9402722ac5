"""Map-matching quality: stationary fixes, route / GPS path length, revisited segments, failures.

Standing taxis make FMM loop: GPS jitter of a few metres *backwards* along a one-way street can
only be matched, with no reverse tolerance, by driving around the block, once per jittering fix
(a real Porto trip ends with 14 fixes 1-4 m apart and its route repeats a four-segment block nine
times: 11.6 km of route for 3.7 km of GPS path). The usual cures, both used here:

- collapse stationary fixes before matching (:func:`collapse_stationary`): a fix within
  ``stationary_radius_m`` of the last kept fix is dropped, except the last fix of each standstill,
  which is kept so that the time the vehicle leaves (and the trip's end time) stay right;
- allow ``reverse_tolerance`` metres of backward movement on an edge (fastmm's own parameter).

Per matched trip, :func:`route_quality` measures the route length against the GPS path length
(``route_gps_ratio``, rejected above ``max_route_gps_ratio``) and the number of revisited road
segments; :func:`describe_failure` says, for a trip FMM could not match, which fixes had no road
within the candidate search radius and after which fixes FMM split the trip.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def collapse_stationary(x: np.ndarray, y: np.ndarray, radius_m: float) -> np.ndarray:
    """Which fixes to keep when the vehicle stands still.

    Walks the fixes in time order with an anchor (the last kept fix that started a move): a fix
    within ``radius_m`` of the anchor is a standstill fix and is dropped, except the last fix of
    every standstill (the one just before the vehicle moves more than ``radius_m`` away, or the
    trip's last fix), which is kept. A standstill of k fixes so becomes 2 fixes: its first (the
    anchor) and its last, with their own positions and times, so travel times do not change.

    Args:
        x, y: ``(n,)`` projected coordinates (m), in time order.
        radius_m: standstill radius (m); ``<= 0`` keeps every fix.

    Returns:
        ``(n,)`` bool mask of the fixes to keep; the first and the last fix are always kept.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(x)
    keep = np.ones(n, dtype=bool)
    if radius_m <= 0 or n < 3:
        return keep
    # Python floats, not numpy scalars: the same IEEE double arithmetic, ~5x faster per fix
    xl, yl = x.tolist(), y.tolist()
    kept = [0]
    ax, ay, dropped = xl[0], yl[0], False
    r2 = float(radius_m) ** 2
    for i in range(1, n):
        xi, yi = xl[i], yl[i]
        if (xi - ax) ** 2 + (yi - ay) ** 2 <= r2:
            dropped = True
            continue
        if dropped:
            kept.append(i - 1)  # the last fix of the standstill: when the vehicle left
        kept.append(i)
        ax, ay, dropped = xi, yi, False
    keep[:] = False
    keep[kept] = True
    keep[n - 1] = True
    return keep


def collapse_stationary_batch(x: np.ndarray, y: np.ndarray, offsets: np.ndarray, radius_m: float) -> np.ndarray:
    """:func:`collapse_stationary` of every trip of a batch at once, on the concatenated fixes.

    The anchor walk of :func:`collapse_stationary` is sequential within a trip, so it is run in
    lockstep over the trips instead: step ``i`` handles fix ``i`` of every trip that has more
    than ``i`` fixes, with numpy over those trips (as many steps as the longest trip has fixes,
    not one Python iteration per fix). The squared distance is ``dx * dx + dy * dy`` in numpy;
    :func:`collapse_stationary` computes it with Python's ``** 2`` (libm ``pow``, which may
    differ from ``dx * dx`` in the last bit), so fixes whose squared distance is within 1e-12
    relative of ``radius_m ** 2`` are decided again with Python's arithmetic: the mask is the
    one :func:`collapse_stationary` gives, trip by trip.

    Source: trajzoo (issue 14), the batch form of :func:`collapse_stationary`.

    Args:
        x, y: ``(N,)`` projected coordinates (m) of the batch's fixes, trip after trip, each trip
            in time order.
        offsets: ``(n_trips + 1,)`` int, trip ``k``'s fixes are ``offsets[k]:offsets[k + 1]``
            (non-decreasing, ``offsets[0] == 0``, ``offsets[-1] == N``).
        radius_m: standstill radius (m); ``<= 0`` keeps every fix.

    Returns:
        ``(N,)`` bool mask of the fixes to keep, equal to ``np.concatenate([collapse_stationary(
        x[a:b], y[a:b], radius_m) for a, b in trips])``.

    Raises:
        ValueError: ``offsets`` does not tile ``0..N``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(x) or (np.diff(offsets) < 0).any():
        raise ValueError(f"offsets must rise from 0 to the {len(x)} fixes, got {len(offsets)} offsets "
                         f"from {offsets[:1].tolist()} to {offsets[-1:].tolist()}")
    keep = np.ones(len(x), dtype=bool)
    lengths = np.diff(offsets)
    if radius_m <= 0:
        return keep
    walked = np.flatnonzero(lengths >= 3)  # shorter trips keep every fix
    if not len(walked):
        return keep
    order = walked[np.argsort(-lengths[walked], kind="stable")]  # longest first: the active trips are a prefix
    lens, starts = lengths[order], offsets[:-1][order]
    keep[np.repeat(starts, lens) + _ranges(lens)] = False
    keep[starts] = True
    r2 = float(radius_m) ** 2
    ax, ay = x[starts], y[starts]
    dropped = np.zeros(len(order), dtype=bool)
    active = np.searchsorted(-lens, -np.arange(int(lens[0])), side="left")  # trips with more than i fixes
    for i in range(1, int(lens[0])):
        m = int(active[i])
        s = starts[:m] + i
        xi, yi = x[s], y[s]
        dx, dy = xi - ax[:m], yi - ay[:m]
        d2 = dx * dx + dy * dy
        near = d2 <= r2
        edge = np.flatnonzero(np.abs(d2 - r2) <= 1e-12 * r2)
        for j in edge.tolist():  # as close to the radius as pow and * can differ: Python's arithmetic
            near[j] = (float(xi[j]) - float(ax[j])) ** 2 + (float(yi[j]) - float(ay[j])) ** 2 <= r2
        move = ~near
        keep[s[move & dropped[:m]] - 1] = True  # the last fix of the standstill: when the vehicle left
        keep[s[move]] = True
        ax[:m] = np.where(move, xi, ax[:m])
        ay[:m] = np.where(move, yi, ay[:m])
        dropped[:m] = near
    keep[starts + lens - 1] = True
    return keep


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """``[0..lengths[0]), [0..lengths[1]), ...`` concatenated: each element's index in its group."""
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    return np.arange(int(ends[-1]) if len(ends) else 0, dtype=np.int64) - np.repeat(ends - lengths, lengths)


def segment_sums(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Sums of ``values[starts[k]:starts[k] + lengths[k]]`` for every k, each exactly ``np.sum`` of the slice.

    ``np.add.reduceat`` sums left to right, while ``np.sum`` of a 1-D float array sums pairwise
    (8 partial sums, halves above 128 values), so their results differ in the last bits for
    slices of 3 or more values. Here the slices of each length ``L`` are gathered into one
    ``(count, L)`` array and summed along its rows, which numpy does with the same pairwise
    summation as ``np.sum`` of each row alone (checked in the tests on real data): one numpy
    call per distinct length, not per slice.

    Source: trajzoo (issue 14); numpy's pairwise summation (``pairwise_sum`` in
    ``numpy/_core/src/umath/loops_utils.h.src``).

    Args:
        values: ``(N,)`` float64.
        starts: ``(K,)`` int, first index of each slice.
        lengths: ``(K,)`` int >= 0, values per slice (a slice must lie inside ``values``).

    Returns:
        ``(K,)`` float64; 0.0 for an empty slice.
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.zeros(len(starts), dtype=np.float64)
    for length in np.unique(lengths[lengths > 0]).tolist():
        sel = np.flatnonzero(lengths == length)
        out[sel] = values[starts[sel, None] + np.arange(length)].sum(axis=1)
    return out


def path_lengths_batch(x: np.ndarray, y: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """:func:`path_length_m` of many runs of fixes of a batch at once: run ``k`` is the polyline
    through ``x[starts[k]:stops[k]], y[starts[k]:stops[k]]`` (projected m).

    The step lengths ``hypot(diff(x), diff(y))`` are computed once on the concatenated fixes (the
    same float operations as per run) and summed per run by :func:`segment_sums` (the same
    pairwise summation as ``np.sum``), so each length equals :func:`path_length_m` of the run
    exactly. A run must not cross from one trip into the next (its steps would include the jump).

    Source: trajzoo (issue 14), the batch form of :func:`path_length_m`.

    Args:
        x, y: ``(N,)`` projected coordinates (m).
        starts, stops: ``(K,)`` int, half-open runs ``starts[k] <= stops[k] <= N``.

    Returns:
        ``(K,)`` float64 lengths (m); 0.0 for a run of fewer than 2 fixes.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    steps = np.hypot(np.diff(x), np.diff(y))
    starts = np.asarray(starts, dtype=np.int64)
    return segment_sums(steps, starts, np.maximum(np.asarray(stops, dtype=np.int64) - starts - 1, 0))


def count_revisits_batch(roads: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`count_revisits` of many routes at once, from their concatenated segment ids.

    Source: trajzoo (issue 14), the batch form of :func:`count_revisits`.

    Args:
        roads: ``(R,)`` int segment ids, route after route (consecutive repeats merged).
        lengths: ``(K,)`` int, segments of each route (summing to ``R``).

    Returns:
        ``(K,)`` int64: per route, ``len(route) - len(set(route))``.
    """
    roads = np.asarray(roads, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    if not len(roads):
        return lengths - np.zeros(len(lengths), dtype=np.int64)
    lo, span = int(roads.min()), int(roads.max()) - int(roads.min()) + 1
    if len(lengths) * span < 2 ** 62:  # one int64 key per (route, segment): one sort
        key = np.sort(owner * span + (roads - lo))
        first = np.ones(len(key), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        return lengths - np.bincount(key[first] // span, minlength=len(lengths))
    order = np.lexsort((roads, owner))
    r, o = roads[order], owner[order]
    first = np.ones(len(r), dtype=bool)
    first[1:] = (r[1:] != r[:-1]) | (o[1:] != o[:-1])
    return lengths - np.bincount(o[first], minlength=len(lengths))


def path_length_m(x: np.ndarray, y: np.ndarray) -> float:
    """Length (m) of the polyline through ``(n,)`` projected points; 0 for fewer than 2."""
    if len(x) < 2:
        return 0.0
    return float(np.hypot(np.diff(x), np.diff(y)).sum())


def count_revisits(roads: np.ndarray) -> int:
    """Number of times a route enters a road segment it has already used.

    ``roads`` is the route's segment sequence with consecutive repeats already merged (as
    :func:`trajzoo.mapmatching.fmm.road_sequence` returns it), so staying on a segment is not a
    revisit and a U-turn onto the opposite direction (another segment id) is not one either; a
    loop around a block is one revisit per segment of the block per extra turn.

    Returns:
        ``len(roads) - len(set(roads))`` (0 for a route that uses every segment once).
    """
    roads = np.asarray(roads)
    return int(len(roads) - len(np.unique(roads)))


def route_quality(route_m: float, gps_m: float, roads: np.ndarray) -> dict:
    """Per-trip route quality: ``route_m``, ``gps_m``, ``route_gps_ratio`` and ``n_revisited``.

    Args:
        route_m: length (m) of the matched route between the first and the last matched point.
        gps_m: length (m) of the GPS path through the same fixes (after stationary collapse).
        roads: the route's segment ids (consecutive repeats merged).

    Returns:
        dict with the two lengths (m), ``route_gps_ratio`` = route_m / max(gps_m, 1 m) (so a trip
        that hardly moves but gets a long route has a large ratio, never a division by zero) and
        ``n_revisited`` (:func:`count_revisits`).
    """
    return {"route_m": float(route_m), "gps_m": float(gps_m),
            "route_gps_ratio": float(route_m) / max(float(gps_m), 1.0), "n_revisited": count_revisits(roads)}


def index_ranges(idx) -> str:
    """Compact text of sorted int indices: ``[3, 4, 5, 9]`` -> ``"3-5,9"``; ``""`` when empty."""
    idx = sorted(int(i) for i in idx)
    if not idx:
        return ""
    parts, start, prev = [], idx[0], idx[0]
    for i in idx[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ",".join(parts)


def parse_index_ranges(text: str) -> list[int]:
    """Inverse of :func:`index_ranges`: ``"3-5,9"`` -> ``[3, 4, 5, 9]``; ``""`` or NA -> ``[]``."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or text is pd.NA or text == "":
        return []
    out: list[int] = []
    for part in str(text).split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


#: Rejection reasons of a trip FMM did not match well enough, by cause (see :func:`describe_failure`).
FAILURE_REASONS = {
    "fmm_no_candidate": "fixes with no road segment within candidate_search_radius split the trip",
    "fmm_disconnected": "every fix had a candidate, but FMM found no route between consecutive fixes "
                        "(a one-way or turn the network does not allow, or a route longer than ubodt_delta)",
}


def describe_failure(n: int, pieces: list[tuple[int, int]], has_candidate: np.ndarray,
                     original_index: np.ndarray) -> dict:
    """Why FMM could not match a trip in one piece: unmatched fixes, their candidates, split points.

    fastmm returns only the successfully matched pieces (sub-trajectories); a fix outside every
    piece is unmatched. An unmatched fix with no road within the candidate search radius is a
    *no-candidate* fix; a boundary between two pieces, or a piece and unmatched fixes, is a
    *split*.

    Args:
        n: fixes given to FMM (after stationary collapse).
        pieces: ``(start, end)`` inclusive fix indices (0..n-1) of the matched pieces, any order.
        has_candidate: ``(n,)`` bool, whether each fix has a road segment within the radius.
        original_index: ``(n,)`` int, the index of each matched fix among the trip's input fixes
            (before stationary collapse); every index reported is an input-fix index.

    Returns:
        dict with ``no_candidate_fixes`` (:func:`index_ranges` text of input-fix indices),
        ``n_no_candidate`` (int), ``split_after`` (text of the input-fix indices after which the
        trip is cut: the last fix of every matched piece or unmatched stretch that another piece
        or stretch follows), ``n_unmatched`` (int, fixes in no piece) and ``cause``: one of
        :data:`FAILURE_REASONS` (``fmm_no_candidate`` when any fix lacks a candidate, else
        ``fmm_disconnected``), or None when a single piece covers every fix.
    """
    # label each fix with its piece (0, 1, ... in time order) or -1 when unmatched; the trip is
    # cut after fix i wherever the label changes between fix i and fix i + 1
    label = np.full(n, -1)
    for k, (a, b) in enumerate(sorted(pieces)):
        label[a:b + 1] = k
    covered = label >= 0
    split = np.flatnonzero(label[:-1] != label[1:]) if n > 1 else np.zeros(0, dtype=int)
    no_cand = np.flatnonzero(~np.asarray(has_candidate, dtype=bool))
    orig = np.asarray(original_index)
    unmatched = int((~covered).sum())
    cause = None
    if unmatched or len(pieces) > 1:
        cause = "fmm_no_candidate" if len(no_cand) else "fmm_disconnected"
    return {"no_candidate_fixes": index_ranges(orig[no_cand]), "n_no_candidate": int(len(no_cand)),
            "split_after": index_ranges(orig[split]), "n_unmatched": unmatched, "cause": cause}


def index_ranges_batch(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """:func:`index_ranges` of many groups of indices at once.

    Source: trajzoo (issue 14), the batch form of :func:`index_ranges`.

    Args:
        values: ``(M,)`` int indices, group after group, increasing within a group (as a trip's
            fix indices are).
        groups: ``(M,)`` int group of each value in ``0..n_groups-1``, non-decreasing.
        n_groups: number of groups (a group without values gets ``""``).

    Returns:
        ``(n_groups,)`` object array of str, e.g. ``"3-5,9"``: ``index_ranges(values[groups == g])``.
    """
    values = np.asarray(values, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    out = np.full(n_groups, "", dtype=object)
    if not len(values):
        return out
    # a run of consecutive indices starts at the first value of a group or after a gap
    start = np.ones(len(values), dtype=bool)
    start[1:] = (groups[1:] != groups[:-1]) | (values[1:] != values[:-1] + 1)
    first = np.flatnonzero(start)
    last = np.append(first[1:], len(values)) - 1
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(values[first].tolist(), values[last].tolist())]
    run_group = groups[first]
    owners, run_starts = np.unique(run_group, return_index=True)
    run_ends = np.append(run_starts[1:], len(parts))
    out[owners] = [",".join(parts[a:b]) for a, b in zip(run_starts.tolist(), run_ends.tolist())]
    return out


def describe_failures_batch(lengths: np.ndarray, piece_trip: np.ndarray, piece_start: np.ndarray,
                            piece_end: np.ndarray, has_candidate: np.ndarray, original_index: np.ndarray) -> dict:
    """:func:`describe_failure` of many trips at once, on their concatenated fixes.

    Source: trajzoo (issue 14), the batch form of :func:`describe_failure`.

    Args:
        lengths: ``(F,)`` fixes given to FMM per trip (after stationary collapse).
        piece_trip, piece_start, piece_end: ``(P,)`` the matched pieces: trip (``0..F-1``) and
            inclusive fix indices within it (``0..lengths[trip]-1``), any order.
        has_candidate: ``(sum lengths,)`` bool per fix, trip after trip.
        original_index: ``(sum lengths,)`` int, each fix's input-fix index within its trip.

    Returns:
        dict of ``(F,)`` arrays with the keys of :func:`describe_failure`: ``no_candidate_fixes``
        and ``split_after`` (object, str), ``n_no_candidate`` and ``n_unmatched`` (int64),
        ``cause`` (object: a :data:`FAILURE_REASONS` key, or None).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n_trips = len(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    total = int(offsets[-1])
    trip_of_fix = np.repeat(np.arange(n_trips, dtype=np.int64), lengths)
    piece_trip = np.asarray(piece_trip, dtype=np.int64)
    a, b = np.asarray(piece_start, dtype=np.int64), np.asarray(piece_end, dtype=np.int64)
    order = np.lexsort((b, a, piece_trip))  # describe_failure labels the pieces in sorted order
    piece_trip, a, b = piece_trip[order], a[order], b[order]
    # each fix's piece (a number unique in the batch) or -1 when unmatched
    label = np.full(total, -1, dtype=np.int64)
    size = np.maximum(b - a + 1, 0)
    label[np.repeat(offsets[piece_trip] + a, size) + _ranges(size)] = np.repeat(np.arange(len(a)), size)
    # cut after fix i where the label changes between fix i and fix i + 1 of the same trip
    cut = np.zeros(total, dtype=bool)
    if total > 1:
        cut[:-1] = (label[:-1] != label[1:]) & (trip_of_fix[:-1] == trip_of_fix[1:])
    no_cand = ~np.asarray(has_candidate, dtype=bool)
    orig = np.asarray(original_index, dtype=np.int64)
    n_unmatched = np.bincount(trip_of_fix[label < 0], minlength=n_trips).astype(np.int64)
    n_no_candidate = np.bincount(trip_of_fix[no_cand], minlength=n_trips).astype(np.int64)
    n_pieces = np.bincount(piece_trip, minlength=n_trips)
    cause = np.full(n_trips, None, dtype=object)
    failed = (n_unmatched > 0) | (n_pieces > 1)
    cause[failed] = np.where(n_no_candidate[failed] > 0, "fmm_no_candidate", "fmm_disconnected")
    return {"no_candidate_fixes": index_ranges_batch(orig[no_cand], trip_of_fix[no_cand], n_trips),
            "n_no_candidate": n_no_candidate,
            "split_after": index_ranges_batch(orig[cut], trip_of_fix[cut], n_trips),
            "n_unmatched": n_unmatched, "cause": cause}


def running_max_batch(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``np.maximum.accumulate`` of each group of a flat array, restarting at every group.

    Only the groups where a value is below its predecessor change (matched entry times are
    non-decreasing nearly always), and those are accumulated one by one with numpy, so the
    result is ``np.maximum.accumulate`` of every group exactly.

    Source: trajzoo (issue 14); the running maximum of :func:`trajzoo.mapmatching.fmm.match_one`.

    Args:
        values: ``(M,)`` float64, group after group (e.g. the entry times (s) of the kept routes).
        lengths: ``(K,)`` int >= 0, values per group (summing to ``M``).

    Returns:
        ``(M,)`` float64, a new array.
    """
    out = np.array(values, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    same_group = np.ones(len(out), dtype=bool)
    same_group[starts[lengths > 0]] = False
    back = np.flatnonzero(same_group[1:] & (out[1:] < out[:-1])) + 1 if len(out) else np.zeros(0, dtype=np.int64)
    if len(back):
        groups = np.unique(np.searchsorted(starts, back, side="right") - 1)  # the last group starting there: non-empty
        for a, c in zip(starts[groups].tolist(), lengths[groups].tolist()):
            out[a:a + c] = np.maximum.accumulate(out[a:a + c])
    return out


def quality_rows(stats: pd.DataFrame, stage: str = "map_matching") -> pd.DataFrame:
    """Extra QC rows (stage, outcome, count) summarising route quality and failures of a stage.

    Args:
        stats: the per-trip table of :func:`trajzoo.mapmatching.fmm.match_trips` (columns
            reason, n_revisited, route_gps_ratio, n_stationary_dropped, n_no_candidate).

    Returns:
        Rows (counts of trips unless named ``fixes_*``): ``kept_revisiting_a_segment`` (kept trips
        whose route enters a segment twice), ``kept_route_gps_ratio_over_2``,
        ``fixes_dropped:stationary`` (fixes collapsed before matching) and
        ``fixes_no_candidate`` (fixes with no road within the search radius, all trips).
    """
    kept = stats["reason"].isna()
    rows = [
        ("kept_revisiting_a_segment", int((kept & (stats["n_revisited"] > 0)).sum())),
        ("kept_route_gps_ratio_over_2", int((kept & (stats["route_gps_ratio"] > 2)).sum())),
        ("fixes_dropped:stationary", int(stats["n_stationary_dropped"].sum())),
        ("fixes_no_candidate", int(stats["n_no_candidate"].sum())),
    ]
    return pd.DataFrame([{"stage": stage, "outcome": o, "count": c} for o, c in rows],
                        columns=["stage", "outcome", "count"])
