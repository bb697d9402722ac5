"""Map matching with FMM (``fastmm``: Yang & Gidofalvi's Fast Map Matching with a UBODT).

GPS points are projected to the city's UTM CRS (pyproj) and matched to the road segments of
:mod:`trajzoo.roads.network`. The UBODT (upper-bounded origin-destination table) is built once per
network and delta, and cached on disk by fastmm. Trips are matched in parallel worker processes
(fastmm holds the GIL, so threads would not help); each worker inherits the matcher by fork.

Before matching, stationary fixes are collapsed (``stationary_radius_m``) and FMM may move back
``reverse_tolerance`` metres on an edge, so that GPS jitter at a standstill does not make the
route circle the block (:mod:`trajzoo.mapmatching.quality`).

What happens to trips that FMM splits: fastmm cuts a trajectory where a point has no candidate
or two consecutive candidate layers are disconnected, and returns only the matched pieces.
trajzoo keeps the longest piece if it covers at least ``min_matched_fraction`` of the trip's GPS
fixes, and rejects the trip otherwise with the cause (:data:`~trajzoo.mapmatching.quality.FAILURE_REASONS`):
``fmm_no_candidate`` when fixes had no road within ``candidate_search_radius``, else
``fmm_disconnected``; the stats table names those fixes and where the trip was split. A kept
route more than ``max_route_gps_ratio`` times the GPS path length is rejected (``route_too_long``).
The kept piece's own first and last times then define the trip's travel time.

Speed (issue 14): trips are matched in batches (:func:`match_batch`, one per worker task). Per
trip only fastmm's own work is done in Python: building the ``Trajectory``, ``match``, and reading
the result; trajzoo's checks and statistics are numpy over the batch's concatenated fixes and
routes with trip offsets, and the tables are built from those flat columns
(:func:`batch_to_tables`). :func:`match_one` and :func:`results_to_tables` are the same stage trip
by trip, one dict per trip: the reference definition the batch path equals exactly
(``tests/core/test_map_matching_batch.py``).
"""
from __future__ import annotations

import functools
import logging
from array import array
import multiprocessing as mp
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import shapely

from trajzoo.mapmatching.quality import (_ranges, collapse_stationary, collapse_stationary_batch, count_revisits_batch,
                                         describe_failure, describe_failures_batch, path_length_m, path_lengths_batch,
                                         running_max_batch)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MatchParams:
    """FMM parameters (distances in metres of the projected CRS).

    Attributes:
        max_candidates: candidate road segments per GPS point (k).
        candidate_search_radius: search radius around each point (m).
        gps_error: GPS error standard deviation in the emission probability (m).
        ubodt_delta: UBODT upper bound on shortest-path distance between candidates (m); should
            exceed the distance a vehicle covers between two fixes (15 s in Porto, ~60 s in SF).
            The config's ``auto`` is resolved to a number by :func:`resolve_ubodt_delta` first.
        reverse_tolerance: backward movement allowed along an edge (m), fastmm's
            ``reverse_tolerance``. 0 forbids it, and then GPS jitter backwards on a one-way street
            can only be matched by a loop around the block. Default 10 m: above the jitter of a
            standing taxi (1-4 m in Porto) and the stationary radius.
        stationary_radius_m: fixes within this distance (m) of the last kept fix are collapsed
            before matching, keeping the first and the last fix of each standstill
            (:func:`~trajzoo.mapmatching.quality.collapse_stationary`); 0 keeps every fix.
        min_matched_fraction: a split trip is kept (its longest matched piece) only if that piece
            covers at least this fraction of the trip's GPS fixes.
        min_segments: fewer matched road segments than this -> rejected (``too_few_segments``).
        max_segments: more matched road segments than this -> rejected (``too_many_segments``);
            bounds the sequence length the models see.
        max_route_gps_ratio: a route longer than this many times the GPS path length through the
            same fixes is rejected (``route_too_long``); ``None`` keeps every route.
    """

    max_candidates: int = 8
    candidate_search_radius: float = 50.0
    gps_error: float = 50.0
    ubodt_delta: float = 3000.0
    reverse_tolerance: float = 10.0
    stationary_radius_m: float = 10.0
    min_matched_fraction: float = 0.8
    min_segments: int = 2
    max_segments: int = 128
    max_route_gps_ratio: float | None = 3.0

    @classmethod
    def from_dict(cls, d: dict) -> "MatchParams":
        """Build from a config dict; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown map_matching parameter(s): {sorted(unknown)}")
        if isinstance(d.get("ubodt_delta"), str):
            raise ValueError(f"map_matching.ubodt_delta {d['ubodt_delta']!r} is not a number: resolve 'auto' with "
                             "resolve_ubodt_delta(city config) first")
        return cls(**d)


#: Bounds (m) of the UBODT delta derived from the sampling interval (:func:`resolve_ubodt_delta`).
#: Below 500 m FMM could not route between candidates a few long road segments apart even at a
#: short sampling interval; at 5 km the table of the Porto extract would be about 0.8 GB
#: (extrapolated: its size grows about with delta squared, 276 MB at 3 km) for routes no taxi
#: drives between two fixes.
UBODT_DELTA_MIN_M = 500.0
UBODT_DELTA_MAX_M = 5000.0
#: Road route length over straight-line distance allowed between two fixes (:func:`resolve_ubodt_delta`).
ROUTE_DETOUR_FACTOR = 2.0
#: Plausible maximum speed (m/s) when the city's ``filters.max_speed_mps`` is not set: the
#: ingest's own default bound on the straight-line speed between consecutive fixes.
DEFAULT_MAX_SPEED_MPS = 50.0


def resolve_ubodt_delta(city: dict) -> tuple[float, str]:
    """The UBODT delta (m) of a city's config, and how it was chosen (for logs and QC).

    ``map_matching.ubodt_delta: auto`` (the default) derives it from the city's sampling interval:

        delta = clip(ROUTE_DETOUR_FACTOR * v_max * dt_90, UBODT_DELTA_MIN_M, UBODT_DELTA_MAX_M)

    with ``dt_90 = sampling_interval_s``, the 90th percentile (s) of the interval between
    consecutive fixes of the city's trips (a config value: Porto 15 s, every fix; San Francisco
    70 s, Cabspotting's median being 60 s; Chengdu 90 s; measured on the data), ``v_max`` the
    fastest straight-line speed between two fixes the ingest lets through
    (``filters.max_speed_mps``, default 50 m/s), and ``ROUTE_DETOUR_FACTOR = 2`` for the road
    route being longer than the straight line (one-way streets, a U-turn around a block). So the
    table holds every route a vehicle can have driven between 9 in 10 consecutive fixes; a longer
    gap driven farther than the table reaches splits the trip (``fmm_disconnected``). Porto:
    2 * 50 * 15 = 1,500 m; San Francisco: 2 * 50 * 70 = 7,000 m, capped to 5,000 m. Measured on
    the 1,855 Porto sample trips: 1,743 kept at 1,500 m, 1,745 at 3,000 m (the former fixed
    default; 2.0x the UBODT load time), 1,709 at 750 m (no detour factor). An explicit number in
    the config is used as it is.

    The interval is a config value, not measured from the ingested trips, so that the
    ``build_ubodt`` rule needs only the road network: the UBODT is built in parallel with the
    ingest and is not rebuilt when an ingest option changes (``map_match`` logs the measured
    90th percentile of the matched trips next to the configured one).

    Args:
        city: one city's config section (``cities.<city>``), after schema defaults.

    Returns:
        ``(delta_m, how)``: the delta in metres and a one-line description of its derivation.

    Raises:
        ValueError: ``auto`` without a positive ``sampling_interval_s``, naming the keys.
    """
    value = (city.get("map_matching") or {}).get("ubodt_delta", "auto")
    if value != "auto":
        return float(value), f"map_matching.ubodt_delta = {float(value):g} m (config)"
    interval = city.get("sampling_interval_s")
    if interval is None or not float(interval) > 0:
        raise ValueError("map_matching.ubodt_delta is 'auto' but sampling_interval_s (the 90th percentile of the "
                         f"interval between fixes, s) is {interval!r}: set it, or give ubodt_delta in metres")
    speed = (city.get("filters") or {}).get("max_speed_mps") or DEFAULT_MAX_SPEED_MPS
    raw = ROUTE_DETOUR_FACTOR * float(speed) * float(interval)
    delta = min(max(raw, UBODT_DELTA_MIN_M), UBODT_DELTA_MAX_M)
    return delta, (f"map_matching.ubodt_delta = auto: {ROUTE_DETOUR_FACTOR:g} x filters.max_speed_mps {float(speed):g} m/s x "
                   f"sampling_interval_s {float(interval):g} s = {raw:g} m, clipped to "
                   f"[{UBODT_DELTA_MIN_M:g}, {UBODT_DELTA_MAX_M:g}] -> {delta:g} m")


def describe_ubodt_delta(city: dict) -> str:
    """One line for logs: the city's (resolved) UBODT delta and whether it is what ``auto`` gives.

    The rules see the delta as a number (``auto`` is resolved when the DAG is built), so a config
    that names the same number as ``auto`` derives builds the same table and does not rebuild it.
    """
    delta = float(city["map_matching"]["ubodt_delta"])
    try:
        auto, how = resolve_ubodt_delta({**city, "map_matching": {**city["map_matching"], "ubodt_delta": "auto"}})
    except ValueError:
        return f"ubodt_delta {delta:g} m (config; no sampling_interval_s for auto)"
    if auto == delta:
        return f"ubodt_delta {delta:g} m = the auto value: {how.split(': ', 1)[1]}"
    return f"ubodt_delta {delta:g} m (config number; auto would give {auto:g} m)"


def build_fastmm_network(segments: pd.DataFrame, geometries: np.ndarray | None = None):
    """Build a finalized ``fastmm.Network`` whose edge ids are the road segment ids.

    Args:
        segments: road segment table with segment_id, u, v and geometry_wkt (projected metres).
        geometries: ``(n_segments,)`` shapely LineStrings of ``geometry_wkt`` when the caller has
            parsed them already (:func:`match_trips` reuses them for its STRtree); None parses here.

    The coordinates of all segments are read in one ``shapely.get_coordinates`` call (the same
    float64 values as each LineString's ``coords``), not one Python iteration per segment.
    """
    import fastmm

    if geometries is None:
        geometries = shapely.from_wkt(segments["geometry_wkt"].to_numpy())
    coords, owner = shapely.get_coordinates(geometries, return_index=True)
    points = list(map(tuple, coords.tolist()))
    ends = np.cumsum(np.bincount(owner, minlength=len(geometries))).tolist()
    net = fastmm.Network()
    start = 0
    for sid, u, v, end in zip(segments["segment_id"].tolist(), segments["u"].tolist(), segments["v"].tolist(), ends):
        net.add_edge(int(sid), source=int(u), target=int(v), geom=points[start:end])
        start = end
    net.finalize()
    return net


class UBODTMissingError(FileNotFoundError):
    """The UBODT for a network and delta is not in the cache folder (and building it was not allowed)."""


def ubodt_file(net, params: MatchParams, ubodt_dir: Path) -> Path | None:
    """The cached UBODT file fastmm uses for ``net`` and ``params.ubodt_delta``, or None if absent.

    fastmm names its cache files ``ubodt_<network hash>_shortest_delta<delta>.bin``; the delta is
    compared as a number, so its text formatting does not matter.
    """
    prefix = f"ubodt_{net.compute_hash()}_shortest_delta"
    for f in sorted(Path(ubodt_dir).glob(prefix + "*.bin")):
        try:
            if float(f.name[len(prefix):-len(".bin")]) == float(params.ubodt_delta):
                return f
        except ValueError:
            continue
    return None


def build_matcher(segments: pd.DataFrame, params: MatchParams, ubodt_dir: Path, require_ubodt: bool = False,
                  geometries: np.ndarray | None = None):
    """Create a ``fastmm.FastMapMatch`` in SHORTEST mode, building or loading the cached UBODT.

    Args:
        require_ubodt: raise :class:`UBODTMissingError` instead of building the UBODT when it is not
            cached in ``ubodt_dir`` (the chunk jobs of a fanned-out matching stage load the table
            the ``build_ubodt`` rule made; none of them should build it again).
        geometries: the segments' parsed LineStrings, if the caller has them
            (:func:`build_fastmm_network`).

    Returns:
        ``(network, matcher)``; keep the network alive as long as the matcher.
    """
    import fastmm

    net = build_fastmm_network(segments, geometries)
    if require_ubodt and ubodt_file(net, params, ubodt_dir) is None:
        raise UBODTMissingError(
            f"no UBODT for network {net.compute_hash()} and delta {params.ubodt_delta} m in {ubodt_dir} "
            "(run the build_ubodt rule first, or match with require_ubodt=False to build it here)")
    Path(ubodt_dir).mkdir(parents=True, exist_ok=True)
    matcher = fastmm.FastMapMatch(net, fastmm.TransitionMode.SHORTEST,
                                  max_distance_between_candidates=float(params.ubodt_delta),
                                  cache_dir=str(ubodt_dir))
    return net, matcher


def road_sequence(subtrajectory) -> tuple[list[int], list[float], float]:
    """Road segment ids, the time (s) each is entered, and the last matched point's time (s).

    From one matched fastmm piece. Consecutive repeats of a segment (a vehicle staying on it
    across GPS fixes, also when it moves back within ``reverse_tolerance``) are merged; the entry
    time is fastmm's interpolated time of the first matched point on the segment.
    """
    roads, times, end_time, _ = _walk_piece(subtrajectory)
    return roads, times, end_time


def _walk_piece(subtrajectory, roads: list | None = None, times: list | None = None
                ) -> tuple[list[int], list[float], float, float]:
    """:func:`road_sequence` plus the route length (m) between the first and last matched point
    (fastmm's ``cumulative_distance`` along the matched path).

    ``roads`` / ``times``: sequences with ``append`` (lists, or ``array("q")`` / ``array("d")``) to
    append the piece's segment ids and entry times to (:func:`match_batch` collects every trip's
    route in one pair of flat arrays); new lists when None. The returned sequences are these,
    with the piece's values appended.

    Speed: fastmm's bindings copy a C++ vector into a new Python list of new objects on *every*
    attribute read (``segments``, ``edges``, ``points``), and reading ``edge.points`` costs more
    than the rest together. So each attribute is read once, and ``points`` only where it is
    needed: on an edge that starts a new road segment (its entry time), and on the last edge
    with points (the end time and route length; not read again when the last edge started a
    new road segment). An edge that repeats the previous segment id is skipped without reading
    its points; the result is the same as reading every point.
    """
    if roads is None:
        roads = []
    if times is None:
        times = []
    first_d = None
    prev = None
    last_edge = None
    last_points = None  # the points of last_edge, when they were read
    for seg in subtrajectory.segments:
        for edge in seg.edges:
            last_edge = edge
            edge_id = edge.edge_id
            if edge_id == prev:
                last_points = None
                continue
            points = last_points = edge.points
            if not points:
                continue
            p0 = points[0]
            if first_d is None:
                first_d = p0.cumulative_distance
            roads.append(edge_id)
            times.append(p0.t)
            prev = edge_id
    if last_edge is None:
        return roads, times, float("nan"), 0.0
    points = last_points if last_points is not None else last_edge.points
    if not points:  # the last edge has no points: find the last one that has (rare)
        points = [p for seg in subtrajectory.segments for e in seg.edges for p in e.points][-1:]
    if not points:
        return roads, times, float("nan"), 0.0
    last = points[-1]
    route_m = max(float(last.cumulative_distance) - float(first_d or 0.0), 0.0)
    return roads, times, float(last.t), route_m


#: Columns of the per-trip stats table (:func:`match_trips`), in order, after trip_id.
STATS_COLUMNS = ("n_points", "n_stationary_dropped", "n_subtrajectories", "n_matched_pieces", "matched_points",
                 "n_unmatched", "n_no_candidate", "no_candidate_fixes", "split_after", "route_m", "gps_m",
                 "route_gps_ratio", "n_revisited", "error_codes", "reason")


def match_one(matcher, x: np.ndarray, y: np.ndarray, t: np.ndarray, params: MatchParams, tree=None,
              xyt: list | None = None) -> dict:
    """Match one trip: collapse stationary fixes, run FMM, keep the longest piece, check it.

    The per-trip reference definition of the stage: :func:`match_batch` (what the stage runs)
    gives the same values for every trip of a batch, with trajzoo's own work done per batch.

    Args:
        matcher: a ``fastmm.FastMapMatch`` (:func:`build_matcher`).
        x, y: ``(n,)`` projected coordinates (m). t: ``(n,)`` Unix seconds.
        params: the matching parameters.
        tree: ``shapely.STRtree`` of the road segment geometries, used to tell, for a trip FMM
            could not match in one piece, which fixes have no road within
            ``candidate_search_radius``; ``None`` reports no fix as such.
        xyt: the trip's fixes as a list of ``[x, y, t]`` lists (all ``n``, before stationary
            collapse) when the caller built them for a whole chunk at once (one ``tolist`` per
            chunk instead of per trip); ``None`` builds them here from x, y, t.

    Returns:
        dict with ``reason`` (None when kept, else a rejection reason), ``roads`` (int64),
        ``enter_times`` (float64 s), ``end_time`` (s) for a kept trip, and the statistics of
        :data:`STATS_COLUMNS`: ``n_points`` input fixes, ``n_stationary_dropped`` fixes collapsed,
        ``matched_points`` input fixes spanned by the kept piece, ``n_unmatched`` fixes in no
        piece, ``n_no_candidate`` / ``no_candidate_fixes`` (0-based input-fix indices as text,
        e.g. ``"4-6,9"``) fixes with no road within the radius, ``split_after`` input-fix indices
        after which the trip was cut, ``route_m`` / ``gps_m`` / ``route_gps_ratio`` /
        ``n_revisited`` of the longest matched piece (the kept one; NaN / -1 when nothing matched).
    """
    import fastmm

    success = fastmm.MatchErrorCode.SUCCESS
    n = len(x)
    keep = collapse_stationary(x, y, params.stationary_radius_m)
    orig = np.flatnonzero(keep)
    xs, ys = np.asarray(x)[keep], np.asarray(y)[keep]
    if xyt is None:
        xyt = np.column_stack([xs, ys, np.asarray(t)[keep]]).tolist()
    else:
        xyt = [xyt[i] for i in orig.tolist()]
    result = matcher.match(fastmm.Trajectory.from_xyt_tuples(xyt), max_candidates=params.max_candidates,
                           candidate_search_radius=params.candidate_search_radius,
                           gps_error=params.gps_error, reverse_tolerance=params.reverse_tolerance)
    subs = result.subtrajectories
    codes = [s.error_code for s in subs]  # each read makes a new object: read once
    ok = [s for s, c in zip(subs, codes) if c == success]
    errors = sorted({c.name for c in codes if c != success})
    out = {"n_points": n, "n_stationary_dropped": int(n - len(orig)), "n_subtrajectories": len(subs),
           "n_matched_pieces": len(ok), "matched_points": 0, "n_unmatched": 0, "n_no_candidate": 0,
           "no_candidate_fixes": "", "split_after": "", "route_m": float("nan"), "gps_m": float("nan"),
           "route_gps_ratio": float("nan"), "n_revisited": -1, "error_codes": ",".join(errors),
           "roads": None, "enter_times": None, "end_time": None, "reason": None}
    pieces = [(s.start_index, s.end_index) for s in ok]
    if len(ok) != 1 or pieces[0] != (0, len(orig) - 1):
        if tree is not None:
            near = tree.query(shapely.points(xs, ys), predicate="dwithin",
                              distance=float(params.candidate_search_radius))[0]
            has_candidate = np.zeros(len(orig), dtype=bool)
            has_candidate[near] = True
        else:
            has_candidate = np.ones(len(orig), dtype=bool)
        failure = describe_failure(len(orig), pieces, has_candidate, orig)
        out.update({k: failure[k] for k in ("no_candidate_fixes", "n_no_candidate", "split_after", "n_unmatched")})
        cause = failure["cause"]
    else:
        cause = None
    if not ok:
        out["reason"] = cause or "fmm_disconnected"
        return out
    k_best = max(range(len(ok)), key=lambda k: (pieces[k][1] - pieces[k][0], -pieces[k][0]))
    best = ok[k_best]
    a, b = pieces[k_best]
    covered = int(orig[b] - orig[a] + 1)  # input fixes spanned, standstill fixes included
    out["matched_points"] = covered
    roads, times, end_time, route_m = _walk_piece(best)
    gps_m = path_length_m(xs[a:b + 1], ys[a:b + 1])
    out.update(route_m=float(route_m), gps_m=gps_m, route_gps_ratio=float(route_m) / max(gps_m, 1.0),
               n_revisited=len(roads) - len(set(roads)))  # = route_quality(...), without numpy per trip
    if covered / n < params.min_matched_fraction:
        out["reason"] = cause or "fmm_disconnected"
        return out
    if len(roads) < params.min_segments:
        out["reason"] = "too_few_segments"
        return out
    if len(roads) > params.max_segments:
        out["reason"] = "too_many_segments"
        return out
    if params.max_route_gps_ratio is not None and out["route_gps_ratio"] > params.max_route_gps_ratio:
        out["reason"] = "route_too_long"
        return out
    times = np.maximum.accumulate(np.asarray(times, dtype=np.float64))
    out["roads"] = np.asarray(roads, dtype=np.int64)
    out["enter_times"] = times
    out["end_time"] = max(end_time, float(times[-1]))
    return out


_WORKER: dict = {}


def _match_chunk(span: tuple[int, int]) -> dict:
    """Match trips ``span[0]:span[1]`` with :func:`match_batch`; the points live in ``_WORKER``
    (inherited by fork, so only the two indices travel to the worker, and one dict of columns
    back)."""
    x, y, t, bounds = _WORKER["x"], _WORKER["y"], _WORKER["t"], _WORKER["bounds"]
    matcher, params, tree = _WORKER["matcher"], _WORKER["params"], _WORKER.get("tree")
    lo, hi = int(bounds[span[0]]), int(bounds[span[1]])
    return match_batch(matcher, x[lo:hi], y[lo:hi], t[lo:hi], bounds[span[0]:span[1] + 1] - lo, params, tree)


#: Columns of :func:`match_batch` about the kept trips' routes (the others are :data:`STATS_COLUMNS`).
ROUTE_COLUMNS = ("n_segments", "end_time", "roads", "enter_times")


def match_batch(matcher, x: np.ndarray, y: np.ndarray, t: np.ndarray, offsets: np.ndarray, params: MatchParams,
                tree=None) -> dict[str, np.ndarray]:
    """Match a batch of trips: :func:`match_one` of each trip, with trajzoo's own work done per batch.

    Only what needs fastmm is done per trip: building its ``fastmm.Trajectory``, ``match``, and
    reading the result (the error codes and fix ranges of the pieces, and the longest matched
    piece's route with :func:`_walk_piece`, appended to flat lists). The rest is numpy over the
    concatenated fixes and routes of the batch, with trip offsets:
    :func:`~trajzoo.mapmatching.quality.collapse_stationary_batch` before matching; after it, the
    fixes spanned by each kept piece, GPS path lengths
    (:func:`~trajzoo.mapmatching.quality.path_lengths_batch`), route / GPS ratios, revisits
    (:func:`~trajzoo.mapmatching.quality.count_revisits_batch`), one STRtree query for the fixes
    of every trip FMM split and their failure description
    (:func:`~trajzoo.mapmatching.quality.describe_failures_batch`), the rejection reasons, and the
    kept routes' running-maximum entry times
    (:func:`~trajzoo.mapmatching.quality.running_max_batch`). The columns equal those of
    :func:`match_one` trip by trip, exactly (``tests/core/test_map_matching_batch.py``).

    Source: trajzoo (issue 14), the batch form of :func:`match_one`; FMM: Yang & Gidofalvi (2018), fastmm.

    Args:
        matcher: a ``fastmm.FastMapMatch`` (:func:`build_matcher`).
        x, y: ``(N,)`` projected coordinates (m) of the batch's fixes, trip after trip.
        t: ``(N,)`` Unix seconds (float64).
        offsets: ``(n_trips + 1,)`` int, trip ``k``'s fixes are ``offsets[k]:offsets[k + 1]``.
        params: the matching parameters.
        tree: ``shapely.STRtree`` of the road segment geometries (see :func:`match_one`); None
            reports no fix as without a candidate.

    Returns:
        dict of columns: every name of :data:`STATS_COLUMNS`, ``(n_trips,)`` each (int64 counts,
        float64 lengths in m and ratios, object arrays of str for the text columns, ``reason``
        None for a kept trip), as :func:`match_one` gives them; and for the kept trips, in order:
        ``n_segments`` ``(n_kept,)`` int64, ``end_time`` ``(n_kept,)`` float64 Unix s, ``roads``
        ``(sum n_segments,)`` int64 segment ids and ``enter_times`` (same length) float64 Unix s,
        non-decreasing within a trip, the routes concatenated.

    Raises:
        ValueError: ``offsets`` does not tile ``0..N``
            (:func:`~trajzoo.mapmatching.quality.collapse_stationary_batch`).
    """
    import fastmm

    success = fastmm.MatchErrorCode.SUCCESS
    from_xyt = fastmm.Trajectory.from_xyt_tuples
    k_max, radius, gps_error, reverse = (params.max_candidates, params.candidate_search_radius, params.gps_error,
                                         params.reverse_tolerance)
    x, y, t = np.asarray(x), np.asarray(y), np.asarray(t)
    offsets = np.asarray(offsets, dtype=np.int64)
    n_trips = len(offsets) - 1
    n = np.diff(offsets)
    keep = collapse_stationary_batch(x, y, offsets, params.stationary_radius_m)
    kept_idx = np.flatnonzero(keep)
    coff = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])[offsets]  # the collapsed trips' offsets
    nc = np.diff(coff)
    orig = kept_idx - np.repeat(offsets[:-1], nc)  # each collapsed fix's index among its trip's input fixes
    xs, ys = x[kept_idx], y[kept_idx]
    # one conversion for the batch, to tuples: 4x faster to make than numpy's lists of lists, and no
    # work for the garbage collector (a tuple of floats is untracked)
    rows = list(zip(xs.tolist(), ys.tolist(), t[kept_idx].tolist()))

    # per trip: fastmm only
    n_subs = np.zeros(n_trips, dtype=np.int64)
    n_ok = np.zeros(n_trips, dtype=np.int64)
    piece_a = np.full(n_trips, -1, dtype=np.int64)  # the longest matched piece, collapsed-fix indices
    piece_b = np.full(n_trips, -1, dtype=np.int64)
    route_m = np.full(n_trips, np.nan)
    end_time = np.full(n_trips, np.nan)
    n_roads = np.zeros(n_trips, dtype=np.int64)
    error_codes = np.full(n_trips, "", dtype=object)
    split: dict[int, list[tuple[int, int]]] = {}  # trips not matched in one piece: their pieces
    roads = array("q")  # the routes, flat: appended per trip, read by numpy without a copy
    times = array("d")
    bounds = coff.tolist()
    for k in range(n_trips):
        c0, c1 = bounds[k], bounds[k + 1]
        subs = matcher.match(from_xyt(rows[c0:c1]), max_candidates=k_max, candidate_search_radius=radius,
                             gps_error=gps_error, reverse_tolerance=reverse).subtrajectories
        codes = [s.error_code for s in subs]  # each read makes a new object: read once
        n_subs[k] = len(subs)
        if len(subs) == 1 and codes[0] == success:  # the common case: one piece
            best = subs[0]
            a, b = best.start_index, best.end_index
            n_ok[k] = 1
            if a != 0 or b != c1 - c0 - 1:
                split[k] = [(a, b)]
        else:
            ok = [s for s, c in zip(subs, codes) if c == success]
            error_codes[k] = ",".join(sorted({c.name for c in codes if c != success}))
            pieces = [(s.start_index, s.end_index) for s in ok]
            n_ok[k] = len(ok)
            if len(ok) != 1 or pieces[0] != (0, c1 - c0 - 1):
                split[k] = pieces
            if not ok:
                continue
            k_best = max(range(len(ok)), key=lambda i: (pieces[i][1] - pieces[i][0], -pieces[i][0]))
            best = ok[k_best]
            a, b = pieces[k_best]
        piece_a[k], piece_b[k] = a, b
        before = len(roads)
        _, _, end_time[k], route_m[k] = _walk_piece(best, roads, times)
        n_roads[k] = len(roads) - before

    # per batch: numpy over the concatenated fixes and routes
    has = piece_a >= 0
    pa, pb = coff[:-1] + np.maximum(piece_a, 0), coff[:-1] + np.maximum(piece_b, 0)
    orig_end = np.append(orig, 0)  # a trip without a piece may point one past the last fix
    matched_points = np.where(has, orig_end[pb] - orig_end[pa] + 1, 0)  # input fixes spanned, standstills included
    gps_m = np.full(n_trips, np.nan)
    gps_m[has] = path_lengths_batch(xs, ys, pa[has], pb[has] + 1)
    ratio = route_m / np.maximum(gps_m, 1.0)
    n_revisited = np.full(n_trips, -1, dtype=np.int64)
    roads, times = np.frombuffer(roads, dtype=np.int64), np.frombuffer(times, dtype=np.float64)
    n_revisited[has] = count_revisits_batch(roads, n_roads)[has]
    n_unmatched = np.zeros(n_trips, dtype=np.int64)
    n_no_candidate = np.zeros(n_trips, dtype=np.int64)
    no_candidate_fixes = np.full(n_trips, "", dtype=object)
    split_after = np.full(n_trips, "", dtype=object)
    cause = np.full(n_trips, None, dtype=object)
    failed = np.fromiter(split, dtype=np.int64, count=len(split))
    if len(failed):  # the trips FMM did not match in one piece: their fixes, one STRtree query
        lo, hi = coff[failed], coff[failed + 1]
        fixes = np.repeat(lo, hi - lo) + _ranges(hi - lo)
        has_candidate = np.ones(len(fixes), dtype=bool)
        if tree is not None:
            near = tree.query(shapely.points(xs[fixes], ys[fixes]), predicate="dwithin",
                              distance=float(params.candidate_search_radius))[0]
            has_candidate[:] = False
            has_candidate[near] = True
        pieces = [(i, a, b) for i, k in enumerate(split) for a, b in split[k]]
        piece_trip, piece_a, piece_b = (np.array([p[j] for p in pieces], dtype=np.int64) for j in range(3))
        f = describe_failures_batch(hi - lo, piece_trip, piece_a, piece_b, has_candidate, orig[fixes])
        no_candidate_fixes[failed], n_no_candidate[failed] = f["no_candidate_fixes"], f["n_no_candidate"]
        split_after[failed], n_unmatched[failed], cause[failed] = f["split_after"], f["n_unmatched"], f["cause"]
    fmm_reason = np.where(cause == None, "fmm_disconnected", cause)  # noqa: E711 (element-wise)
    reason = np.full(n_trips, None, dtype=object)
    # the checks of match_one, the first that fails names the reason: assigned last to first
    if params.max_route_gps_ratio is not None:
        reason[has & (ratio > params.max_route_gps_ratio)] = "route_too_long"
    reason[has & (n_roads > params.max_segments)] = "too_many_segments"
    reason[has & (n_roads < params.min_segments)] = "too_few_segments"
    low = has & (matched_points / np.maximum(n, 1) < params.min_matched_fraction)
    reason[low] = fmm_reason[low]
    reason[~has] = fmm_reason[~has]

    kept = reason == None  # noqa: E711 (element-wise)
    on_kept = np.repeat(kept, n_roads)
    route = roads[on_kept]
    enter = times[on_kept]
    seg_counts = n_roads[kept]
    enter = running_max_batch(enter, seg_counts)  # each route's entry times non-decreasing
    route_starts = np.cumsum(seg_counts) - seg_counts
    last_enter = enter[route_starts + seg_counts - 1]
    end_kept = end_time[kept]
    return {"n_points": n.astype(np.int64), "n_stationary_dropped": (n - nc).astype(np.int64),
            "n_subtrajectories": n_subs, "n_matched_pieces": n_ok, "matched_points": matched_points.astype(np.int64),
            "n_unmatched": n_unmatched, "n_no_candidate": n_no_candidate, "no_candidate_fixes": no_candidate_fixes,
            "split_after": split_after, "route_m": route_m, "gps_m": gps_m, "route_gps_ratio": ratio,
            "n_revisited": n_revisited, "error_codes": error_codes, "reason": reason,
            "n_segments": seg_counts, "end_time": np.where(last_enter > end_kept, last_enter, end_kept),
            "roads": route, "enter_times": enter}


def project_points(lon: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Project degrees (EPSG:4326) to ``crs`` metres with pyproj; arrays of any shape.

    The transformer is made once per CRS and process (:func:`_transformer`), not per call.
    """
    return _transformer(crs).transform(lon, lat)


@functools.lru_cache(maxsize=8)
def _transformer(crs: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)


def build_ubodt(segments: pd.DataFrame, params: MatchParams, ubodt_dir: Path) -> Path:
    """Build (or find) the UBODT of a road network once, in fastmm's cache folder ``ubodt_dir``.

    Single-threaded in fastmm (Porto extract, 3 km delta: about 1 minute, 276 MB). Every later
    :func:`build_matcher` on the same segments and delta loads the file instead of building it.

    Returns:
        The cache file's path.

    Raises:
        RuntimeError: fastmm wrote no cache file where expected.
    """
    net, matcher = build_matcher(segments, params, ubodt_dir)
    found = ubodt_file(net, params, ubodt_dir)
    del matcher
    if found is None:
        raise RuntimeError(f"fastmm built a UBODT but wrote no ubodt_{net.compute_hash()}_* file in {ubodt_dir}")
    return found


@dataclass
class MatchSetup:
    """What matching needs besides the trips, made once and reused over many calls of
    :func:`match_trips_prepared` (a chunk job matching its trips batch by batch loads the UBODT
    once, not per batch).

    Attributes:
        network: the finalized ``fastmm.Network`` (edge ids = road segment ids); keep it alive as
            long as ``matcher``.
        matcher: the ``fastmm.FastMapMatch`` with the UBODT loaded (:func:`build_matcher`).
        tree: ``shapely.STRtree`` of the ``(n_segments,)`` segment LineStrings (projected m),
            used to name the fixes with no road within the search radius.
        params: the matching parameters the matcher was made for.
    """

    network: object
    matcher: object
    tree: shapely.STRtree
    params: MatchParams


def prepare_matching(segments: pd.DataFrame, params: MatchParams, ubodt_dir: Path,
                     require_ubodt: bool = False) -> MatchSetup:
    """Build the fastmm network, load (or build) the UBODT and the segments' STRtree, once.

    Args:
        segments: road segments (see :func:`trajzoo.roads.network.graph_to_segments`), geometry
            in projected metres; their WKT is parsed once for the network and the STRtree.
        params: matching parameters (``ubodt_delta`` selects the cached table).
        ubodt_dir: fastmm's UBODT cache folder.
        require_ubodt: fail rather than build a missing UBODT.

    Returns:
        A :class:`MatchSetup` for :func:`match_trips_prepared`.

    Raises:
        UBODTMissingError: ``require_ubodt`` and no UBODT for this network and delta in ``ubodt_dir``.
    """
    geometries = shapely.from_wkt(segments["geometry_wkt"].to_numpy())  # parsed once: network and STRtree
    net, matcher = build_matcher(segments, params, ubodt_dir, require_ubodt=require_ubodt, geometries=geometries)
    return MatchSetup(network=net, matcher=matcher, tree=shapely.STRtree(geometries), params=params)


def match_trips(trips: pd.DataFrame, segments: pd.DataFrame, crs: str, params: MatchParams,
                ubodt_dir: Path, workers: int = 1, chunk_size: int | None = None, progress: bool = True,
                require_ubodt: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Map-match every trip: :func:`prepare_matching` then :func:`match_trips_prepared`.

    Args:
        trips: ingest output (trip_id, timestamps, lon, lat, ...).
        segments: road segments (see :func:`trajzoo.roads.network.graph_to_segments`).
        crs: projected CRS of the segments' geometry.
        workers: worker processes (the rule's threads).
        chunk_size: trips per task sent to a worker; default about 8 chunks per worker
            (64..4096 trips), which keeps both cores busy with little scheduling overhead.
        require_ubodt: fail (:class:`UBODTMissingError`) rather than build a missing UBODT.

    Returns:
        ``(matched, stats, rejections)``. ``matched``: the trip's columns except the raw GPS
        arrays, plus ``roads`` (int64 segment ids), ``enter_times`` (float64 Unix seconds,
        non-decreasing), ``end_time`` (Unix s of the last matched point) and ``n_segments``,
        in input order. ``stats``: one row per input trip, trip_id then :data:`STATS_COLUMNS`
        (see :func:`match_one`: fixes collapsed, unmatched and without candidate, where the trip
        was split, route and GPS path length in m, their ratio, revisited segments, reason).
        ``rejections``: trip_id, reason, and for FMM failures the fixes with no candidate and
        the split points (``no_candidate_fixes``, ``split_after``, input-fix indices as text).
    """
    setup = prepare_matching(segments, params, ubodt_dir, require_ubodt=require_ubodt)
    return match_trips_prepared(setup, trips, crs, workers=workers, chunk_size=chunk_size, progress=progress)


def match_trips_prepared(setup: MatchSetup, trips: pd.DataFrame, crs: str, workers: int = 1,
                         chunk_size: int | None = None, progress: bool = True
                         ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """:func:`match_trips` with the matcher of :func:`prepare_matching` (no UBODT load here).

    Each trip is matched independently of the others, so matching a table in consecutive
    slices and concatenating the results gives the tables of matching it at once.

    Args:
        setup: network, matcher, STRtree and parameters (:func:`prepare_matching`).
        trips, crs, workers, chunk_size, progress: as in :func:`match_trips`.

    Returns:
        ``(matched, stats, rejections)`` as :func:`match_trips`.
    """
    from tqdm import tqdm

    lon = np.concatenate(trips["lon"].to_numpy()) if len(trips) else np.zeros(0)
    lat = np.concatenate(trips["lat"].to_numpy()) if len(trips) else np.zeros(0)
    t = np.concatenate(trips["timestamps"].to_numpy()).astype(np.float64) if len(trips) else np.zeros(0)
    x, y = project_points(lon, lat, crs)
    bounds = np.cumsum([0] + [len(a) for a in trips["lon"]])
    if chunk_size is None:
        chunk_size = int(np.clip(np.ceil(len(trips) / (8 * max(workers, 1))), 64, 4096))
    spans = [(i, min(i + chunk_size, len(trips))) for i in range(0, len(trips), chunk_size)]
    _WORKER.update(matcher=setup.matcher, params=setup.params, x=x, y=y, t=t, bounds=bounds, tree=setup.tree)
    parts: list[dict] = []
    bar = tqdm(total=len(trips), desc="map matching", unit="trip", disable=not progress, mininterval=5)
    if workers > 1 and len(spans) > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            for part in pool.imap(_match_chunk, spans):
                parts.append(part)
                bar.update(len(part["n_points"]))
    else:
        for span in spans:
            part = _match_chunk(span)
            parts.append(part)
            bar.update(len(part["n_points"]))
    bar.close()
    _WORKER.clear()
    return batch_to_tables(trips, concat_batches(parts))


def concat_batches(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The columns of consecutive :func:`match_batch` calls, concatenated (no part: every column
    empty, with its dtype), as one :func:`match_batch` on all their trips gives them.

    Source: trajzoo (issue 14).
    """
    if not parts:
        ints = np.zeros(0, dtype=np.int64)
        floats = np.zeros(0, dtype=np.float64)
        texts = np.zeros(0, dtype=object)
        kinds = {"route_m": floats, "gps_m": floats, "route_gps_ratio": floats, "end_time": floats,
                 "enter_times": floats, "no_candidate_fixes": texts, "split_after": texts, "error_codes": texts,
                 "reason": texts}
        return {c: kinds.get(c, ints) for c in STATS_COLUMNS + ROUTE_COLUMNS}
    if len(parts) == 1:
        return parts[0]
    return {c: np.concatenate([p[c] for p in parts]) for c in STATS_COLUMNS + ROUTE_COLUMNS}


def batch_to_tables(trips: pd.DataFrame, cols: dict[str, np.ndarray]
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The stage's ``(matched, stats, rejections)`` tables from the columns of :func:`match_batch`
    on the rows of ``trips`` (in order): the tables :func:`results_to_tables` makes from
    :func:`match_one`'s dicts, built from the flat columns (the routes split into one array per
    kept trip by their ``n_segments`` offsets) instead of one dict per trip.

    Source: trajzoo (issue 14), the columnar form of :func:`results_to_tables`.

    Raises:
        KeyError: ``cols`` lacks a column of :data:`STATS_COLUMNS` or :data:`ROUTE_COLUMNS`.
        ValueError: the columns do not hold one value per row of ``trips``.
    """
    if len(cols["n_points"]) != len(trips):
        raise ValueError(f"{len(cols['n_points'])} matching results for {len(trips)} trips")
    stats = _stats_table(trips["trip_id"].to_numpy(), cols)
    ok = stats["reason"].isna().to_numpy()
    keep_cols = [c for c in trips.columns if c not in ("lon", "lat", "timestamps")]
    matched = trips.loc[ok, keep_cols].reset_index(drop=True)
    ends = np.cumsum(cols["n_segments"]).tolist()
    spans = list(zip([0] + ends[:-1], ends))  # each kept trip's route in the flat columns
    roads, enter = np.asarray(cols["roads"], dtype=np.int64), np.asarray(cols["enter_times"], dtype=np.float64)
    matched["roads"] = [roads[a:b] for a, b in spans]  # views of the flat arrays, one per trip
    matched["enter_times"] = [enter[a:b] for a, b in spans]
    matched["end_time"] = np.asarray(cols["end_time"], dtype=np.float64)
    matched["n_segments"] = np.asarray(cols["n_segments"], dtype=np.int32)
    rejections = stats.loc[~ok, ["trip_id", "reason", "no_candidate_fixes", "split_after"]].reset_index(drop=True)
    return matched, stats, rejections


def _stats_table(trip_ids: np.ndarray, cols) -> pd.DataFrame:
    """The stage's per-trip QC table: ``trip_id`` then :data:`STATS_COLUMNS` from ``cols`` (a
    mapping of each column to one value per trip), with fixed dtypes (float64 lengths and ratio,
    string reasons and index ranges, int64 counts) so that every chunk's table has the same types."""
    stats = pd.DataFrame({"trip_id": trip_ids})
    for col in STATS_COLUMNS:
        values = cols[col]
        if col in ("route_m", "gps_m", "route_gps_ratio"):
            stats[col] = np.asarray(values, dtype=np.float64)
        elif col in ("no_candidate_fixes", "split_after", "error_codes", "reason"):
            stats[col] = pd.array(values, dtype="str")
        else:
            stats[col] = np.asarray(values, dtype=np.int64)
    return stats


def results_to_tables(trips: pd.DataFrame, results: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The stage's ``(matched, stats, rejections)`` tables from one per-trip result dict
    (:func:`match_one`) per row of ``trips`` (in order; the reference for :func:`batch_to_tables`,
    which the stage uses): ``stats`` has one row per trip with :data:`STATS_COLUMNS`; ``matched``
    the kept trips' columns (without lon/lat/timestamps) plus ``roads`` (road segment ids),
    ``enter_times`` (seconds), ``end_time`` (seconds) and ``n_segments``; ``rejections`` the
    trip id, reason, fixes without a candidate and split points of the others.

    Raises:
        KeyError: a result lacks a column of :data:`STATS_COLUMNS`.
    """
    # explicit dtypes: a chunk where every trip is kept (reason all missing) must give the same
    # column types as the whole table, so gathered chunks equal the unchunked stage
    stats = _stats_table(trips["trip_id"].to_numpy(), {col: [r[col] for r in results] for col in STATS_COLUMNS})
    ok = stats["reason"].isna().to_numpy()
    keep_cols = [c for c in trips.columns if c not in ("lon", "lat", "timestamps")]
    matched = trips.loc[ok, keep_cols].reset_index(drop=True)
    matched["roads"] = [r["roads"] for r, k in zip(results, ok) if k]
    matched["enter_times"] = [r["enter_times"] for r, k in zip(results, ok) if k]
    matched["end_time"] = np.array([r["end_time"] for r, k in zip(results, ok) if k], dtype=np.float64)
    matched["n_segments"] = np.array([len(r) for r in matched["roads"]], dtype=np.int32)
    rejections = stats.loc[~ok, ["trip_id", "reason", "no_candidate_fixes", "split_after"]].reset_index(drop=True)
    return matched, stats, rejections
