"""Task locations on the road network and the trajectories that pass them (location-level tasks).

Location-level tasks (TrajGANR, "Query/task locations") are posed at geographic points on the
road network rather than on trips. Without street-view images (the offline default) the points
are sampled along every road segment every ``spacing_m`` metres; with images they are the image
locations snapped to their nearest road segment. A trajectory is *associated* with a location
when its GPS path (the polyline through its fixes, projected metres) passes within ``delta_m``
metres of it (TrajGANR section 3.2, the distance threshold delta).

Everything is vectorised with shapely 2 (``line_interpolate_point``, one ``STRtree`` query for
all trips, ``line_locate_point``). Coordinates are metres in the city's projected CRS.

Leakage rule of every location task (:mod:`trajzoo.tasks.location`): labels come from the
trips of the city's TEST split only; every model input from the TRAIN split only
(:func:`train_view`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from trajzoo.qc import stage_counts

#: Columns of the locations table (one row per task location).
LOCATION_COLUMNS = ["location_id", "segment_id", "x", "y", "lon", "lat", "location_split", "source"]
#: Columns of the location-trip association table.
ASSOCIATION_COLUMNS = ["location_id", "trip_id", "split", "dist_m"]


def canonical_segments(segments: pd.DataFrame) -> pd.DataFrame:
    """One row per undirected road: the two directions of a two-way road (``u -> v`` and
    ``v -> u`` of the same length) share one geometry, so only the lower ``segment_id`` is kept.

    Args:
        segments: the road stage's segments table (``segment_id``, ``u``, ``v``, ``length`` m,
            ``geometry_wkt`` projected).

    Returns:
        The kept rows, in segment-id order.
    """
    key = pd.DataFrame({"a": np.minimum(segments["u"], segments["v"]), "b": np.maximum(segments["u"], segments["v"]),
                        "len": segments["length"].round(1)})
    keep = ~key.duplicated(keep="first").to_numpy()
    return segments[keep].sort_values("segment_id").reset_index(drop=True)


def sample_road_locations(segments: pd.DataFrame, spacing_m: float) -> pd.DataFrame:
    """Points every ``spacing_m`` metres along every (undirected) road segment.

    A segment of length ``len`` gets ``n = max(1, floor(len / spacing_m))`` points at distances
    ``(i + 0.5) len / n`` from its start (so a short segment gets its midpoint).

    Args:
        segments: road segments (see :func:`canonical_segments`, applied here).
        spacing_m: spacing in metres, > 0.

    Returns:
        DataFrame ``segment_id, x, y`` (metres, projected CRS), in segment order.

    Raises:
        ValueError: ``spacing_m <= 0`` or a geometry that does not parse.
    """
    if not spacing_m > 0:
        raise ValueError(f"spacing_m must be > 0, got {spacing_m}")
    seg = canonical_segments(segments)
    lines = shapely.from_wkt(seg["geometry_wkt"].to_numpy())
    length = shapely.length(lines)
    n = np.maximum(1, np.floor(length / spacing_m)).astype(np.int64)
    idx = np.repeat(np.arange(len(seg)), n)
    offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    dist = (offset + 0.5) * length[idx] / n[idx]
    pts = shapely.line_interpolate_point(lines[idx], dist)
    return pd.DataFrame({"segment_id": seg["segment_id"].to_numpy()[idx], "x": shapely.get_x(pts),
                         "y": shapely.get_y(pts)})


def snap_to_segments(x: np.ndarray, y: np.ndarray, segments: pd.DataFrame, max_dist_m: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Snap points (e.g. street-view image locations) to their nearest road segment.

    Args:
        x, y: ``(n,)`` metres, projected CRS.
        segments: road segments (``segment_id``, ``geometry_wkt``).
        max_dist_m: points farther than this from every segment are not snapped.

    Returns:
        ``(segment_id, x_snapped, y_snapped)``, each ``(n,)``; ``segment_id`` -1 (and NaN
        coordinates) where no segment lies within ``max_dist_m``.
    """
    seg = canonical_segments(segments)
    lines = shapely.from_wkt(seg["geometry_wkt"].to_numpy())
    pts = shapely.points(np.asarray(x, float), np.asarray(y, float))
    tree = shapely.STRtree(lines)
    pi, li = tree.query_nearest(pts, max_distance=max_dist_m, all_matches=False)
    sid = np.full(len(pts), -1, dtype=np.int64)
    sx = np.full(len(pts), np.nan)
    sy = np.full(len(pts), np.nan)
    snapped = shapely.line_interpolate_point(lines[li], shapely.line_locate_point(lines[li], pts[pi]))
    sid[pi] = seg["segment_id"].to_numpy()[li]
    sx[pi] = shapely.get_x(snapped)
    sy[pi] = shapely.get_y(snapped)
    return sid, sx, sy


def trip_lines(rows: list[dict]) -> np.ndarray:
    """``(n,)`` shapely LineStrings through each trip's fixes (``x``, ``y`` metres); a trip with
    one fix becomes a degenerate two-point line."""
    out = []
    for r in rows:
        xy = np.column_stack([np.asarray(r["x"], float), np.asarray(r["y"], float)])
        if len(xy) == 1:
            xy = np.vstack([xy, xy])
        out.append(xy)
    return shapely.linestrings(np.concatenate(out), indices=np.repeat(np.arange(len(out)), [len(a) for a in out])) \
        if out else np.array([], dtype=object)


def associate(locations: pd.DataFrame, rows: list[dict], splits: list[str], delta_m: float) -> pd.DataFrame:
    """Every (location, trip) pair whose GPS path passes within ``delta_m`` metres of the location.

    Args:
        locations: ``location_id, x, y`` (metres).
        rows: point rows (``trip_id``, ``x``, ``y`` arrays; :func:`trajzoo.data.points.point_rows`).
        splits: the trip split of each row (``train`` / ``val`` / ``test``).
        delta_m: the distance threshold delta in metres (> 0).

    Returns:
        DataFrame :data:`ASSOCIATION_COLUMNS` (``dist_m`` the path-to-location distance), sorted
        by location then trip.

    Raises:
        ValueError: ``delta_m <= 0`` or ``rows`` and ``splits`` of different lengths.
    """
    if not delta_m > 0:
        raise ValueError(f"delta_m must be > 0, got {delta_m}")
    if len(rows) != len(splits):
        raise ValueError(f"associate: {len(rows)} rows but {len(splits)} splits")
    if not rows or not len(locations):
        return pd.DataFrame(columns=ASSOCIATION_COLUMNS)
    pts = shapely.points(locations["x"].to_numpy(float), locations["y"].to_numpy(float))
    lines = trip_lines(rows)
    tree = shapely.STRtree(pts)
    li, pi = tree.query(lines, predicate="dwithin", distance=delta_m)
    dist = shapely.distance(lines[li], pts[pi])
    trip_ids = np.array([str(r["trip_id"]) for r in rows], dtype=object)
    out = pd.DataFrame({"location_id": locations["location_id"].to_numpy()[pi], "trip_id": trip_ids[li],
                        "split": np.asarray(splits, dtype=object)[li], "dist_m": dist})
    return out.sort_values(["location_id", "trip_id"]).reset_index(drop=True)


def split_locations(segment_ids: np.ndarray, fractions: dict[str, float], seed: int) -> np.ndarray:
    """Location split of the task head (train / val / test LOCATIONS), by road segment: every
    location of one segment lands in the same split, so neighbouring points of one road are not
    scored against each other. Sorted unique segments are permuted with
    ``numpy.random.default_rng(seed)`` and cut by the fractions.

    Returns:
        ``(n,)`` object array of ``"train"``, ``"val"``, ``"test"``.

    Raises:
        ValueError: fractions negative or not summing to 1.
    """
    frac = np.array([fractions[s] for s in ("train", "val", "test")], dtype=float)
    if (frac < 0).any() or not np.isclose(frac.sum(), 1.0):
        raise ValueError(f"location split fractions must be >= 0 and sum to 1, got {fractions}")
    segs = np.unique(segment_ids)
    perm = np.random.default_rng(seed).permutation(len(segs))
    n_train, n_val = int(round(frac[0] * len(segs))), int(round(frac[1] * len(segs)))
    lab = np.empty(len(segs), dtype=object)
    lab[perm[:n_train]] = "train"
    lab[perm[n_train:n_train + n_val]] = "val"
    lab[perm[n_train + n_val:]] = "test"
    return lab[np.searchsorted(segs, segment_ids)]


def poi_distribution(x: np.ndarray, y: np.ndarray, poi_x: np.ndarray, poi_y: np.ndarray, poi_cat: np.ndarray,
                     n_categories: int, radius_m: float) -> np.ndarray:
    """Counts of POI categories within ``radius_m`` of each point (AOI function labels).

    Args:
        x, y: ``(n,)`` metres. poi_x, poi_y: ``(m,)`` metres. poi_cat: ``(m,)`` int in
            ``[0, n_categories)``. radius_m: radius in metres.

    Returns:
        ``(n, n_categories)`` int64 counts.
    """
    from scipy.spatial import cKDTree

    out = np.zeros((len(x), n_categories), dtype=np.int64)
    if not len(poi_x) or not len(x):
        return out
    tree = cKDTree(np.column_stack([poi_x, poi_y]))
    hits = tree.query_ball_point(np.column_stack([x, y]), r=radius_m)
    for i, h in enumerate(hits):
        if h:
            np.add.at(out[i], np.asarray(poi_cat)[h], 1)
    return out


def build_locations(segments: pd.DataFrame, rows: list[dict], splits: list[str], spacing_m: float, delta_m: float,
                    crs: str, location_split: dict, max_locations: int | None = None, seed: int = 0,
                    images: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The locations stage: task locations, their trip associations and the accounting.

    Locations are road points every ``spacing_m`` (``images`` None) or image locations snapped
    to their nearest segment (``images``: ``image_id, x, y``; those farther than ``delta_m`` from
    a road are rejected ``image_off_road``). A location no TRAIN trip passes is dropped
    (``no_train_trip``: the model would have no trajectory there; decided from TRAIN trips only,
    never from the test trips that give labels); then at most ``max_locations`` are kept, a seeded
    random subset (``location_cap``).

    Returns:
        ``(locations, associations, qc)``: :data:`LOCATION_COLUMNS` (lon/lat WGS84,
        ``location_split`` from :func:`split_locations`, ``source`` ``road`` or the image id),
        :data:`ASSOCIATION_COLUMNS` restricted to the kept locations, and the stage
        ``locations`` accounting (in = kept + rejected).
    """
    from pyproj import Transformer

    if images is None:
        cand = sample_road_locations(segments, spacing_m)
        cand["source"] = "road"
        reasons = []
    else:
        sid, sx, sy = snap_to_segments(images["x"].to_numpy(), images["y"].to_numpy(), segments, delta_m)
        ok = sid >= 0
        cand = pd.DataFrame({"segment_id": sid[ok], "x": sx[ok], "y": sy[ok],
                             "source": images["image_id"].astype(str).to_numpy()[ok]})
        reasons = ["image_off_road"] * int((~ok).sum())
    n_in = len(cand) + len(reasons)
    cand.insert(0, "location_id", np.arange(len(cand), dtype=np.int64))
    assoc = associate(cand, rows, splits, delta_m)
    has_train = np.isin(cand["location_id"], assoc.loc[assoc["split"] == "train", "location_id"].unique())
    reasons += ["no_train_trip"] * int((~has_train).sum())
    cand = cand[has_train]
    if max_locations is not None and len(cand) > max_locations:
        keep = np.sort(np.random.default_rng(seed).choice(len(cand), size=max_locations, replace=False))
        reasons += ["location_cap"] * (len(cand) - max_locations)
        cand = cand.iloc[keep]
    cand = cand.reset_index(drop=True)
    old = cand["location_id"].to_numpy()
    cand["location_id"] = np.arange(len(cand), dtype=np.int64)
    remap = pd.Series(cand["location_id"].to_numpy(), index=old)
    assoc = assoc[assoc["location_id"].isin(old)].copy()
    assoc["location_id"] = remap.reindex(assoc["location_id"]).to_numpy()
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(cand["x"].to_numpy(),
                                                                               cand["y"].to_numpy())
    cand["lon"], cand["lat"] = lon, lat
    cand["location_split"] = split_locations(cand["segment_id"].to_numpy(), location_split,
                                             int(location_split.get("seed", seed)))
    qc = stage_counts("locations", n_in, len(cand), pd.Series(reasons, dtype=object))
    return cand[LOCATION_COLUMNS], assoc.reset_index(drop=True)[ASSOCIATION_COLUMNS], qc


@dataclass
class LocationView:
    """A city's task locations (the ``locations`` prepared input).

    Attributes:
        table: :data:`LOCATION_COLUMNS`, one row per location, ``location_id`` = row index.
        trips: :data:`ASSOCIATION_COLUMNS`, every (location, trip) pair within delta.
        frame: ``{"crs", "bbox_xy": [min_x, min_y, max_x, max_y] metres, "bbox": lon/lat degrees,
            "delta_m", "spacing_m"}``, the study area every coordinate is normalised in.
        poi_counts: ``(n, C)`` POI category counts within the AOI radius of each location, or None.
        images: image features ``(n, F)`` float32 aligned with ``table`` (image locations only), or None.
    """

    table: pd.DataFrame
    trips: pd.DataFrame
    frame: dict
    poi_counts: np.ndarray | None = None
    images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.table)


@dataclass
class LocationInputs:
    """Everything a model may read for location-level tasks: the locations, the study-area frame,
    and the TRAIN-split trips only (:func:`train_view`).

    Attributes:
        city: city key. timezone: IANA zone.
        table: the locations (:data:`LOCATION_COLUMNS`).
        frame: see :class:`LocationView`.
        trips: associations restricted to TRAIN trips.
        rows: TRAIN point rows by trip id (x, y metres, t Unix s, minute_of_day, ...).
        images: image features aligned with ``table``, or None.
    """

    city: str
    timezone: str
    table: pd.DataFrame
    frame: dict
    trips: pd.DataFrame
    rows: dict
    images: np.ndarray | None = None

    def trips_of(self, max_per_location: int, seed: int) -> list[list[str]]:
        """Per location (in table order) at most ``max_per_location`` associated TRAIN trip ids,
        a seeded random subset (``numpy.random.default_rng(seed)``) in trip-id order."""
        rng = np.random.default_rng(seed)
        groups = self.trips.groupby("location_id")["trip_id"].apply(list).to_dict()
        out = []
        for loc in self.table["location_id"].to_numpy():
            ids = sorted(groups.get(int(loc), []))
            if len(ids) > max_per_location:
                ids = sorted(rng.choice(np.array(ids, dtype=object), size=max_per_location, replace=False).tolist())
            out.append(ids)
        return out


def train_view(city) -> LocationInputs:
    """The model-input view of a :class:`trajzoo.data.prepared.PreparedCity` for location tasks:
    locations, frame, and ONLY the TRAIN split's trips and associations (validation and test
    trips, whose test half gives the labels, never reach a model).

    Raises:
        ValueError: the city lacks its ``locations`` or ``points`` view.
    """
    loc: LocationView = city.require("locations")
    rows = {r["trip_id"]: r for r in city.require("points")["train"]}
    trips = loc.trips[(loc.trips["split"] == "train") & loc.trips["trip_id"].isin(list(rows))].reset_index(drop=True)
    return LocationInputs(city.name, city.timezone, loc.table, loc.frame, trips, rows, loc.images)


def fix_kinematics(r: dict) -> tuple[np.ndarray, np.ndarray]:
    """Speeds and accelerations of one trip from its consecutive fixes.

    ``v_k = |p_{k+1} - p_k| / (t_{k+1} - t_k)`` (m/s) for each fix pair with ``dt > 0``;
    ``a_k = (v_k - v_{k-1}) / ((dt_k + dt_{k-1}) / 2)`` (m/s^2) at fix k (between the pair
    before and the pair after it).

    Returns:
        ``(v, a)``: ``(n-1,)`` speeds (NaN where dt <= 0) and ``(n,)`` accelerations (NaN at the
        first and last fix and where a speed is NaN).
    """
    x, y, t = (np.asarray(r[k], float) for k in ("x", "y", "t"))
    dt = np.diff(t)
    d = np.hypot(np.diff(x), np.diff(y))
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(dt > 0, d / dt, np.nan)
        a = np.full(len(x), np.nan)
        if len(x) >= 3:
            a[1:-1] = (v[1:] - v[:-1]) / ((dt[1:] + dt[:-1]) / 2)
    return v, a


def enclosing_pair(r: dict, px: float, py: float) -> tuple[int, float]:
    """Index k of the fix pair ``(k, k+1)`` whose segment of the trip's path lies closest to
    point ``(px, py)``, and the fraction ``r`` in [0, 1] of the projection along it (metres)."""
    x, y = np.asarray(r["x"], float), np.asarray(r["y"], float)
    if len(x) == 1:
        return 0, 0.0
    ax, ay, bx, by = x[:-1], y[:-1], x[1:], y[1:]
    vx, vy = bx - ax, by - ay
    ll = vx * vx + vy * vy
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip(np.where(ll > 0, ((px - ax) * vx + (py - ay) * vy) / ll, 0.0), 0.0, 1.0)
    dist = np.hypot(ax + frac * vx - px, ay + frac * vy - py)
    k = int(np.argmin(dist))
    return k, float(frac[k])
