"""Map matching with FMM (``fastmm``: Yang & Gidofalvi's Fast Map Matching with a UBODT).

GPS points are projected to the city's UTM CRS (pyproj) and matched to the road segments of
:mod:`trajzoo.roads.network`. The UBODT (upper-bounded origin-destination table) is built once per
network and delta, and cached on disk by fastmm. Trips are matched in parallel worker processes
(fastmm holds the GIL, so threads would not help); each worker inherits the matcher by fork.

What happens to trips that FMM splits: fastmm cuts a trajectory where a point has no candidate
or two consecutive candidate layers are disconnected. trajzoo keeps the longest successfully
matched piece if it covers at least ``min_matched_fraction`` of the trip's GPS points, and rejects
the trip otherwise (reason ``fmm_split``, or ``fmm_<error>`` when nothing matched). The kept
piece's own first and last times then define the trip's travel time.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import shapely

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
        reverse_tolerance: allowed backward movement on a segment (m); 0 for directed roads.
        min_matched_fraction: a split trip is kept (its longest matched piece) only if that piece
            covers at least this fraction of the trip's GPS points.
        min_segments: fewer matched road segments than this -> rejected (``too_few_segments``).
        max_segments: more matched road segments than this -> rejected (``too_many_segments``);
            bounds the sequence length the models see.
    """

    max_candidates: int = 8
    candidate_search_radius: float = 50.0
    gps_error: float = 50.0
    ubodt_delta: float = 3000.0
    reverse_tolerance: float = 0.0
    min_matched_fraction: float = 0.8
    min_segments: int = 2
    max_segments: int = 128

    @classmethod
    def from_dict(cls, d: dict) -> "MatchParams":
        """Build from a config dict; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown map_matching parameter(s): {sorted(unknown)}")
        return cls(**d)


def build_fastmm_network(segments: pd.DataFrame):
    """Build a finalized ``fastmm.Network`` whose edge ids are the road segment ids.

    Args:
        segments: road segment table with segment_id, u, v and geometry_wkt (projected metres).
    """
    import fastmm

    net = fastmm.Network()
    for sid, u, v, geom in zip(segments["segment_id"], segments["u"], segments["v"],
                               shapely.from_wkt(segments["geometry_wkt"].to_numpy())):
        net.add_edge(int(sid), source=int(u), target=int(v), geom=[tuple(c) for c in geom.coords])
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


def build_matcher(segments: pd.DataFrame, params: MatchParams, ubodt_dir: Path, require_ubodt: bool = False):
    """Create a ``fastmm.FastMapMatch`` in SHORTEST mode, building or loading the cached UBODT.

    Args:
        require_ubodt: raise :class:`UBODTMissingError` instead of building the UBODT when it is not
            cached in ``ubodt_dir`` (the chunk jobs of a fanned-out matching stage load the table
            the ``build_ubodt`` rule made; none of them should build it again).

    Returns:
        ``(network, matcher)``; keep the network alive as long as the matcher.
    """
    import fastmm

    net = build_fastmm_network(segments)
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
    across GPS fixes) are merged; the entry time is fastmm's interpolated time of the first
    matched point on the segment.
    """
    roads: list[int] = []
    times: list[float] = []
    end_time = float("nan")
    segments = subtrajectory.segments  # fastmm builds a new Python list on every attribute read
    for seg in segments:
        for edge in seg.edges:
            edge_id = edge.edge_id
            if roads and roads[-1] == edge_id:
                continue
            points = edge.points
            if points:
                roads.append(int(edge_id))
                times.append(float(points[0].t))
    for seg in reversed(segments):  # the last matched point: last point of the last non-empty edge
        for edge in reversed(seg.edges):
            points = edge.points
            if points:
                end_time = float(points[-1].t)
                break
        if end_time == end_time:
            break
    return roads, times, end_time


def match_one(matcher, x: np.ndarray, y: np.ndarray, t: np.ndarray, params: MatchParams) -> dict:
    """Match one trip; returns a dict with status, reason, roads, enter_times and statistics.

    Args:
        x, y: ``(n,)`` projected coordinates (m). t: ``(n,)`` Unix seconds.
    """
    import fastmm

    traj = fastmm.Trajectory.from_xyt_tuples(np.column_stack([x, y, t]).tolist())
    result = matcher.match(traj, max_candidates=params.max_candidates,
                           candidate_search_radius=params.candidate_search_radius,
                           gps_error=params.gps_error, reverse_tolerance=params.reverse_tolerance)
    subs = list(result.subtrajectories)
    ok = [s for s in subs if s.error_code == fastmm.MatchErrorCode.SUCCESS]
    errors = sorted({s.error_code.name for s in subs if s.error_code != fastmm.MatchErrorCode.SUCCESS})
    n = len(x)
    out = {"n_points": n, "n_subtrajectories": len(subs), "n_matched_pieces": len(ok),
           "error_codes": ",".join(errors), "matched_points": 0, "roads": None, "enter_times": None, "end_time": None,
           "reason": None}
    if not ok:
        out["reason"] = "fmm_" + (errors[0].lower() if errors else "no_result")
        return out
    best = max(ok, key=lambda s: (s.end_index - s.start_index, -s.start_index))
    covered = best.end_index - best.start_index + 1
    out["matched_points"] = covered
    if covered / n < params.min_matched_fraction:
        out["reason"] = "fmm_split"
        return out
    roads, times, end_time = road_sequence(best)
    if len(roads) < params.min_segments:
        out["reason"] = "too_few_segments"
        return out
    if len(roads) > params.max_segments:
        out["reason"] = "too_many_segments"
        return out
    times = np.maximum.accumulate(np.asarray(times, dtype=np.float64))
    out["roads"] = np.asarray(roads, dtype=np.int64)
    out["enter_times"] = times
    out["end_time"] = max(end_time, float(times[-1]))
    return out


_WORKER: dict = {}


def _match_chunk(span: tuple[int, int]) -> list[dict]:
    """Match trips ``span[0]:span[1]``; the points live in ``_WORKER`` (inherited by fork, so only
    the two indices travel to the worker)."""
    x, y, t, bounds = _WORKER["x"], _WORKER["y"], _WORKER["t"], _WORKER["bounds"]
    matcher, params = _WORKER["matcher"], _WORKER["params"]
    return [match_one(matcher, x[a:b], y[a:b], t[a:b], params)
            for a, b in zip(bounds[span[0]:span[1]], bounds[span[0] + 1:span[1] + 1])]


def project_points(lon: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Project degrees (EPSG:4326) to ``crs`` metres with pyproj; arrays of any shape."""
    transformer = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return transformer.transform(lon, lat)


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


def match_trips(trips: pd.DataFrame, segments: pd.DataFrame, crs: str, params: MatchParams,
                ubodt_dir: Path, workers: int = 1, chunk_size: int | None = None, progress: bool = True,
                require_ubodt: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Map-match every trip.

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
        in input order. ``stats``: one row per input trip (n_points,
        n_subtrajectories, n_matched_pieces, matched_points, error_codes, reason).
        ``rejections``: trip_id, reason.
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
    net, matcher = build_matcher(segments, params, ubodt_dir, require_ubodt=require_ubodt)
    _WORKER.update(matcher=matcher, params=params, x=x, y=y, t=t, bounds=bounds)
    results: list[dict] = []
    bar = tqdm(total=len(trips), desc="map matching", unit="trip", disable=not progress, mininterval=5)
    if workers > 1 and len(spans) > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            for part in pool.imap(_match_chunk, spans):
                results += part
                bar.update(len(part))
    else:
        for span in spans:
            part = _match_chunk(span)
            results += part
            bar.update(len(part))
    bar.close()
    _WORKER.clear()
    stats = pd.DataFrame({k: [r[k] for r in results] for k in
                          ("n_points", "n_subtrajectories", "n_matched_pieces", "matched_points")}, dtype=np.int64)
    # explicit string dtypes: a chunk where every trip is kept (reason all missing) must give the
    # same column type as the whole table, so gathered chunks equal the unchunked stage
    stats["error_codes"] = pd.array([r["error_codes"] for r in results], dtype="str")
    stats["reason"] = pd.array([r["reason"] for r in results], dtype="str")
    stats.insert(0, "trip_id", trips["trip_id"].to_numpy())
    ok = stats["reason"].isna().to_numpy()
    keep_cols = [c for c in trips.columns if c not in ("lon", "lat", "timestamps")]
    matched = trips.loc[ok, keep_cols].reset_index(drop=True)
    matched["roads"] = [r["roads"] for r, k in zip(results, ok) if k]
    matched["enter_times"] = [r["enter_times"] for r, k in zip(results, ok) if k]
    matched["end_time"] = np.array([r["end_time"] for r, k in zip(results, ok) if k], dtype=np.float64)
    matched["n_segments"] = np.array([len(r) for r in matched["roads"]], dtype=np.int32)
    rejections = stats.loc[~ok, ["trip_id", "reason"]].reset_index(drop=True)
    return matched, stats, rejections
