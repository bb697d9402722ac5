"""Per-point features of raw GPS trajectories for point-level models (TransferTraj).

TransferTraj (arXiv 2505.12672, Section "Point modalities") describes every GPS point by four
modalities: spatial (x, y), temporal, POI context and road context. The paper embeds POI and road
*names* with a commercial text-embedding API; here the context is OpenStreetMap *categories*
(road class, lanes and maxspeed of the nearest road segment; the most frequent POI category
nearby) with the fixed shared vocabularies of :mod:`trajzoo.data.points`, plus the two local
density numbers that feed the SC-MoE gate (POIs and road length around the point).

Everything is vectorised over all points of all trips at once: one pyproj transform, one pandas
time-zone conversion, one shapely STRtree nearest query, one KD-tree count per POI category and
one FFT convolution of a road-length raster.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from trajzoo.data.points import MAX_LANES, MAXSPEED_BUCKETS_KMH, POI_CATEGORIES, ROAD_CLASSES
from trajzoo.ingest.errors import InputFileError
from trajzoo.qc import stage_counts

log = logging.getLogger(__name__)

#: Columns of the points table written by :func:`point_features` (list columns hold one value per point).
POINT_COLUMNS = [
    "trip_id", "start_time", "n_points", "x", "y", "t", "minute_of_day", "day_of_week", "road_class",
    "road_lanes", "road_maxspeed", "poi_category", "poi_log_count", "road_km", "has_poi", "has_road",
]

#: OSM value -> POI category (:data:`trajzoo.data.points.POI_CATEGORIES`). Looked up for the values
#: of the ``amenity``, ``tourism`` and ``leisure`` keys; every ``shop=*`` is "shop". A value not in
#: the table falls back to :data:`OSM_KEY_DEFAULT_CATEGORY` of its key, then to "other".
OSM_POI_CATEGORY: dict[str, str] = {
    # food and drink
    **dict.fromkeys(["restaurant", "cafe", "fast_food", "bar", "pub", "food_court", "ice_cream", "biergarten"],
                    "food"),
    # lodging (tourism=*)
    **dict.fromkeys(["hotel", "hostel", "guest_house", "motel", "apartment", "chalet", "camp_site",
                     "caravan_site", "alpine_hut", "wilderness_hut"], "lodging"),
    # transport
    **dict.fromkeys(["bus_station", "taxi", "ferry_terminal", "car_rental", "car_sharing", "bicycle_rental",
                     "boat_rental", "bus_stop", "station"], "transport"),
    # parking
    **dict.fromkeys(["parking", "parking_entrance", "parking_exit", "parking_space", "motorcycle_parking",
                     "bicycle_parking"], "parking"),
    # fuel and car services
    **dict.fromkeys(["fuel", "charging_station", "car_wash"], "fuel"),
    # shops that are tagged as amenities
    **dict.fromkeys(["marketplace", "vending_machine"], "shop"),
    # culture and sights (tourism=*, amenity=*)
    **dict.fromkeys(["museum", "gallery", "artwork", "attraction", "viewpoint", "information", "theme_park",
                     "zoo", "aquarium", "theatre", "cinema", "arts_centre", "place_of_worship", "monument"],
                    "culture"),
    # health
    **dict.fromkeys(["hospital", "clinic", "pharmacy", "doctors", "dentist", "veterinary"], "health"),
    # education
    **dict.fromkeys(["school", "university", "college", "kindergarten", "library"], "education"),
    # leisure (also the default of leisure=*)
    **dict.fromkeys(["picnic_site", "park", "marina", "slipway", "sports_centre", "fitness_centre",
                     "playground", "stadium", "nightclub", "swimming_pool", "garden"], "leisure"),
    # finance
    **dict.fromkeys(["bank", "atm", "bureau_de_change"], "finance"),
    # public services and street furniture
    **dict.fromkeys(["townhall", "police", "post_office", "fire_station", "courthouse", "toilets",
                     "drinking_water", "bench", "fountain", "waste_basket", "waste_disposal", "recycling",
                     "shelter", "telephone", "community_centre", "social_facility", "post_box"], "public"),
}
#: Category of an OSM key whose value is not in :data:`OSM_POI_CATEGORY`.
OSM_KEY_DEFAULT_CATEGORY: dict[str, str] = {"shop": "shop", "leisure": "leisure", "tourism": "culture",
                                            "amenity": "other"}


def poi_category(key: str | None, value: str | None) -> str:
    """POI category name of one OSM ``key=value`` (see :data:`OSM_POI_CATEGORY`); unknown -> "other"."""
    key = None if key is None or (isinstance(key, float) and np.isnan(key)) else str(key).strip()
    value = None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
    if key == "shop":
        return "shop"
    if value in OSM_POI_CATEGORY:
        return OSM_POI_CATEGORY[value]
    return OSM_KEY_DEFAULT_CATEGORY.get(key, "other")


def read_pois(paths: list[Path]) -> pd.DataFrame:
    """Read POI CSV files into one table with a category of :data:`POI_CATEGORIES`.

    Two layouts are recognised by their header: ``lon,lat,cat`` (OSM tourism points: ``cat`` is the
    ``tourism`` value) and ``osm_id,lon,lat,key,value,name`` (OSM amenity/shop/leisure/tourism
    nodes). A missing or unknown value becomes "other" (see :func:`poi_category`).

    Args:
        paths: CSV files (plain or compressed as pandas reads them).

    Returns:
        DataFrame with columns lon, lat (float64 degrees), category (str, one of
        :data:`POI_CATEGORIES`), in file then row order.

    Raises:
        InputFileError: a file is missing, has neither layout, or has a row whose lon/lat is not a
            number within [-180, 180] x [-90, 90] (the message names the file and the data row).
    """
    parts = []
    for path in map(Path, paths):
        if not path.is_file():
            raise InputFileError(path, "POI file not found")
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        cols = set(df.columns)
        if {"lon", "lat", "key", "value"} <= cols:
            cats = [poi_category(k, v or None) for k, v in zip(df["key"], df["value"])]
        elif {"lon", "lat", "cat"} <= cols:
            cats = [poi_category("tourism", v or None) for v in df["cat"]]
        else:
            raise InputFileError(path, f"header {list(df.columns)} is neither lon,lat,cat nor "
                                       "osm_id,lon,lat,key,value,name", line=1)
        lon = pd.to_numeric(df["lon"], errors="coerce").to_numpy(np.float64)
        lat = pd.to_numeric(df["lat"], errors="coerce").to_numpy(np.float64)
        bad = ~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputFileError(path, f"lon/lat {df['lon'].iloc[i]!r}, {df['lat'].iloc[i]!r} is not a coordinate "
                                       "in degrees", row=i + 1, line=i + 2)
        parts.append(pd.DataFrame({"lon": lon, "lat": lat, "category": cats}))
    if not parts:
        return pd.DataFrame({"lon": pd.Series(dtype=np.float64), "lat": pd.Series(dtype=np.float64),
                             "category": pd.Series(dtype=str)})
    return pd.concat(parts, ignore_index=True)


def road_class_id(highway) -> int:
    """Id (index + 1) of an OSM ``highway`` value in :data:`ROAD_CLASSES`; unknown -> "other"; None/NaN -> 0."""
    if highway is None or (isinstance(highway, float) and np.isnan(highway)) or str(highway) in ("", "None", "nan"):
        return 0
    h = str(highway)
    return (ROAD_CLASSES.index(h) if h in ROAD_CLASSES else ROAD_CLASSES.index("other")) + 1


def lanes_id(lanes: np.ndarray) -> np.ndarray:
    """Lanes rounded and clipped to 1..:data:`MAX_LANES`; NaN or < 0.5 -> 0 (missing)."""
    lanes = np.asarray(lanes, dtype=np.float64)
    out = np.clip(np.rint(np.nan_to_num(lanes, nan=0.0)), 0, MAX_LANES).astype(np.int64)
    return out


def maxspeed_id(kmh: np.ndarray) -> np.ndarray:
    """Bucket id of maxspeeds in km/h: index + 1 of the first upper bound in
    :data:`MAXSPEED_BUCKETS_KMH` that is >= the speed (50 -> the "<= 50" bucket); NaN or <= 0 -> 0."""
    kmh = np.asarray(kmh, dtype=np.float64)
    ids = np.searchsorted(np.asarray(MAXSPEED_BUCKETS_KMH), kmh, side="left") + 1
    return np.where(np.isfinite(kmh) & (kmh > 0), ids, 0).astype(np.int64)


def undirected_segments(segments: pd.DataFrame) -> pd.DataFrame:
    """One row per physical road: drop the reverse twin of each two-way segment.

    The segments table (:mod:`trajzoo.roads.network`) has one row per *directed* edge, so a
    two-way street appears twice with the same geometry reversed. Twins are recognised by the
    unordered node pair, osmid and length (to 0.1 m); the first row (lowest segment_id) is kept.
    """
    u = segments["u"].to_numpy()
    v = segments["v"].to_numpy()
    key = pd.DataFrame({"a": np.minimum(u, v), "b": np.maximum(u, v), "osmid": segments["osmid"].astype(str).to_numpy(),
                        "len": np.round(segments["length"].to_numpy(np.float64), 1)})
    return segments[~key.duplicated(keep="first").to_numpy()].reset_index(drop=True)


def _disk_kernel(radius_m: float, cell_m: float) -> np.ndarray:
    """``(2k+1, 2k+1)`` 0/1 kernel of the cells whose centre is within ``radius_m`` of the centre cell."""
    k = int(np.floor(radius_m / cell_m))
    off = np.arange(-k, k + 1) * cell_m
    return (off[:, None] ** 2 + off[None, :] ** 2 <= radius_m ** 2).astype(np.float64)


def road_km_within(x: np.ndarray, y: np.ndarray, lines, radius_m: float, cell_m: float = 20.0,
                   max_cells: int = 25_000_000) -> np.ndarray:
    """Road length (km) within ``radius_m`` of every point, on a raster (documented approximation).

    Roads are cut into pieces of at most ``cell_m / 2`` (shapely ``segmentize``); each piece's
    length goes to the raster cell of its midpoint; the raster is convolved (scipy FFT) with the
    disk of cells whose centres lie within ``radius_m``; each point reads the value of its own
    cell. So a point counts the road pieces whose midpoints lie in cells whose centres are within
    ``radius_m`` of its cell centre: the disk edge is blurred by about one cell (20 m on a 500 m
    radius: a few per cent), in exchange for a cost proportional to the raster, not to points x
    roads. Exact alternative (per point, STRtree + intersection length) was too slow for 10^6
    points with a 500 m radius.

    Args:
        x, y: ``(N,)`` projected point coordinates, metres.
        lines: shapely LineStrings in the same CRS (metres), one per physical road.
        radius_m: disk radius, metres.
        cell_m: raster cell size, metres; grown (and logged) if the points' extent plus radius would
            need more than ``max_cells`` cells.

    Returns:
        ``(N,)`` float64 km.
    """
    import shapely
    from scipy.signal import fftconvolve

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) == 0 or len(lines) == 0:
        return np.zeros(len(x))
    x0, y0 = x.min() - radius_m - cell_m, y.min() - radius_m - cell_m
    width, height = x.max() + radius_m + cell_m - x0, y.max() + radius_m + cell_m - y0
    if (width / cell_m) * (height / cell_m) > max_cells:
        new = float(np.sqrt(width * height / max_cells)) * 1.01
        log.warning("road raster: extent %.0f x %.0f m; cell grown from %.0f m to %.0f m", width, height, cell_m, new)
        cell_m = new
    nx, ny = int(np.ceil(width / cell_m)), int(np.ceil(height / cell_m))
    lines = np.asarray(lines, dtype=object)
    lines = lines[shapely.length(lines) > 0]  # GEOS cannot segmentize a zero-length line; it adds no length
    pieces = shapely.segmentize(lines, cell_m / 2)
    coords, idx = shapely.get_coordinates(pieces, return_index=True)
    same = idx[1:] == idx[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    mid = (a + b) / 2
    seg_len = np.hypot(*(b - a).T)
    ci = np.floor((mid[:, 0] - x0) / cell_m).astype(np.int64)
    cj = np.floor((mid[:, 1] - y0) / cell_m).astype(np.int64)
    inside = (ci >= 0) & (ci < nx) & (cj >= 0) & (cj < ny)
    grid = np.bincount(cj[inside] * nx + ci[inside], weights=seg_len[inside], minlength=nx * ny).reshape(ny, nx)
    disk = fftconvolve(grid, _disk_kernel(radius_m, cell_m), mode="same")
    pi = np.clip(np.floor((x - x0) / cell_m).astype(np.int64), 0, nx - 1)
    pj = np.clip(np.floor((y - y0) / cell_m).astype(np.int64), 0, ny - 1)
    value = disk[pj, pi]
    return np.where(value < 1e-3, 0.0, value) / 1000.0  # FFT round-off (< 1 mm) is zero road


def nearest_road(x: np.ndarray, y: np.ndarray, roads: pd.DataFrame, lines, radius_m: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class, lanes and maxspeed ids of the nearest road segment within ``radius_m`` of each point.

    One shapely ``STRtree.query_nearest`` over all points (distance to the segment geometry, metres;
    of equidistant segments the tree returns the first it finds, deterministically for the same
    table). Points with no segment within the radius get 0 (missing) in all three.

    Args:
        x, y: ``(N,)`` metres. roads: undirected segments (columns highway, lanes, maxspeed km/h).
        lines: their LineStrings (metres). radius_m: search radius, metres.

    Returns:
        ``(road_class, road_lanes, road_maxspeed)``, each ``(N,)`` int64.
    """
    import shapely

    n = len(x)
    cls, lanes, speed = (np.zeros(n, dtype=np.int64) for _ in range(3))
    if n == 0 or len(lines) == 0:
        return cls, lanes, speed
    tree = shapely.STRtree(np.asarray(lines, dtype=object))
    pts = shapely.points(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    pi, si = tree.query_nearest(pts, max_distance=radius_m, all_matches=False)
    road_cls = np.array([road_class_id(h) for h in roads["highway"]], dtype=np.int64)
    cls[pi] = road_cls[si]
    lanes[pi] = lanes_id(roads["lanes"].to_numpy(np.float64))[si]
    speed[pi] = maxspeed_id(roads["maxspeed"].to_numpy(np.float64))[si]
    return cls, lanes, speed


def poi_context(x: np.ndarray, y: np.ndarray, poi_x: np.ndarray, poi_y: np.ndarray, poi_cat: np.ndarray,
                category_radius_m: float, count_radius_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Most frequent POI category within ``category_radius_m`` and POI count within ``count_radius_m``.

    Exact counts with scipy KD-trees (one per category, ``query_ball_point(return_length=True)``,
    distance <= radius, Euclidean in the projected CRS); no pair list is materialised.

    Args:
        x, y: ``(N,)`` point coordinates, metres. poi_x, poi_y: ``(P,)`` metres.
        poi_cat: ``(P,)`` int category ids (1..len(POI_CATEGORIES)).

    Returns:
        ``(poi_category, count)``: ``(N,)`` int64 id of the most frequent category (ties -> the
        lowest id; 0 = no POI within the radius) and ``(N,)`` int64 number of POIs.
    """
    from scipy.spatial import cKDTree

    n = len(x)
    pts = np.column_stack([x, y]).astype(np.float64)
    if n == 0 or len(poi_x) == 0:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    pois = np.column_stack([poi_x, poi_y]).astype(np.float64)
    count = np.asarray(cKDTree(pois).query_ball_point(pts, count_radius_m, return_length=True), dtype=np.int64)
    per_cat = np.zeros((n, len(POI_CATEGORIES)), dtype=np.int32)
    for c in np.unique(poi_cat):
        tree = cKDTree(pois[poi_cat == c])
        per_cat[:, c - 1] = tree.query_ball_point(pts, category_radius_m, return_length=True)
    best = per_cat.argmax(axis=1) + 1
    return np.where(per_cat.max(axis=1) > 0, best, 0).astype(np.int64), count


def point_features(trips: pd.DataFrame, crs: str, timezone: str, segments: pd.DataFrame | None = None,
                   pois: pd.DataFrame | None = None, road_radius_m: float = 50.0, poi_radius_m: float = 200.0,
                   context_radius_m: float = 500.0, context_cell_m: float = 20.0
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-point features of every trip: projected position, local time, road and POI context.

    Source: TransferTraj (arXiv 2505.12672) point modalities, with OSM categories in place of the
    paper's text embeddings of names (see the module docstring).

    Args:
        trips: the ingest table (columns trip_id, timestamps (int Unix s), lon, lat (degrees);
            start_time and n_points are recomputed).
        crs: projected CRS of the city (metres), e.g. ``"EPSG:32629"``; pyproj, ``always_xy``.
        timezone: IANA zone of local time, e.g. ``"Europe/Lisbon"``.
        segments: the city's road segments (:data:`trajzoo.roads.network.SEGMENT_COLUMNS`;
            geometry_wkt in ``crs``), or None when the city has no road network (Chengdu).
        pois: :func:`read_pois` output, or None when the city has no POI data (San Francisco).
        road_radius_m: the nearest road segment is searched within this distance (metres).
        poi_radius_m: the most frequent POI category is taken within this distance (metres).
        context_radius_m: POI count and road length are taken within this distance (metres);
            these two are the SC-MoE gate input (``PointBatch.context``).
        context_cell_m: raster cell of the road-length approximation (:func:`road_km_within`).

    Returns:
        ``(points, qc)``. ``points``: one row per kept trip, columns :data:`POINT_COLUMNS`:
        trip_id (str), start_time (int64 Unix s), n_points (int32); list columns with one value
        per point: x, y (float64 metres, ABSOLUTE projected coordinates; made relative to the
        first point by :func:`trajzoo.data.points.collate_points`), t (int64 Unix s),
        minute_of_day (0..1439) and day_of_week (Monday = 0) in local time, road_class,
        road_lanes, road_maxspeed, poi_category (int64 ids, 0 = missing or nothing within the
        radius), poi_log_count (float64 ``log1p`` of the POI count), road_km (float64 km of road
        within ``context_radius_m``); has_poi, has_road (bool: the city has POI data / a road
        network; a point with nothing nearby still has 0 ids). ``qc``: stage ``points``
        (:func:`trajzoo.qc.stage_counts`, in = kept + rejected), reasons
        ``point_lists_differ_in_length``, ``no_points``, ``projection_failed`` (a point that
        pyproj cannot project into ``crs``).

    Raises:
        ValueError: a required column is missing from ``trips``, ``segments`` or ``pois``.
    """
    from pyproj import Transformer
    import shapely

    for name, df, cols in (("trips", trips, ("trip_id", "timestamps", "lon", "lat")),
                           ("segments", segments, ("u", "v", "osmid", "highway", "lanes", "maxspeed", "length",
                                                   "geometry_wkt")),
                           ("pois", pois, ("lon", "lat", "category"))):
        if df is not None and (missing := [c for c in cols if c not in df.columns]):
            raise ValueError(f"point_features: {name} lacks column(s) {missing}")
    n_in = len(trips)
    lon_l = [np.asarray(v, dtype=np.float64) for v in trips["lon"]]
    lat_l = [np.asarray(v, dtype=np.float64) for v in trips["lat"]]
    t_l = [np.asarray(v, dtype=np.int64) for v in trips["timestamps"]]
    reasons = np.full(n_in, None, dtype=object)
    lens = np.array([len(a) for a in lon_l], dtype=np.int64)
    for i, (a, b, c) in enumerate(zip(lon_l, lat_l, t_l)):
        if not (len(a) == len(b) == len(c)):
            reasons[i] = "point_lists_differ_in_length"
        elif len(a) == 0:
            reasons[i] = "no_points"
    ok = np.array([r is None for r in reasons])
    flat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    sel = np.flatnonzero(ok)
    lon = flat([lon_l[i] for i in sel])
    lat = flat([lat_l[i] for i in sel])
    t = flat([t_l[i] for i in sel]).astype(np.int64)
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    bounds = np.concatenate([[0], np.cumsum(lens[sel])])
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.all():
        bad_trip = np.add.reduceat(~finite, bounds[:-1]) > 0 if len(sel) else np.zeros(0, bool)
        reasons[sel[bad_trip]] = "projection_failed"
        keep_pt = np.repeat(~bad_trip, lens[sel])
        x, y, t = x[keep_pt], y[keep_pt], t[keep_pt]
        sel = sel[~bad_trip]
        bounds = np.concatenate([[0], np.cumsum(lens[sel])])
    local = pd.to_datetime(t, unit="s", utc=True).tz_convert(timezone)
    minute_of_day = np.asarray(local.hour * 60 + local.minute, dtype=np.int64)
    day_of_week = np.asarray(local.day_of_week, dtype=np.int64)
    n_pts = len(x)
    if segments is not None:
        roads = undirected_segments(segments)
        lines = shapely.from_wkt(roads["geometry_wkt"].to_numpy())
        road_class, road_lanes, road_maxspeed = nearest_road(x, y, roads, lines, road_radius_m)
        road_km = road_km_within(x, y, lines, context_radius_m, context_cell_m)
    else:
        road_class = road_lanes = road_maxspeed = np.zeros(n_pts, dtype=np.int64)
        road_km = np.zeros(n_pts)
    if pois is not None:
        px, py = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(
            pois["lon"].to_numpy(np.float64), pois["lat"].to_numpy(np.float64))
        cat = np.array([POI_CATEGORIES.index(c) + 1 if c in POI_CATEGORIES else POI_CATEGORIES.index("other") + 1
                        for c in pois["category"]], dtype=np.int64)
        poi_cat, poi_count = poi_context(x, y, np.asarray(px), np.asarray(py), cat, poi_radius_m, context_radius_m)
        poi_log_count = np.log1p(poi_count.astype(np.float64))
    else:
        poi_cat = np.zeros(n_pts, dtype=np.int64)
        poi_log_count = np.zeros(n_pts)
    cut = bounds[1:-1]
    points = pd.DataFrame({
        "trip_id": trips["trip_id"].astype(str).to_numpy()[sel],
        "start_time": np.array([t_l[i][0] for i in sel], dtype=np.int64),
        "n_points": lens[sel].astype(np.int32),
    })
    for name, arr in (("x", x), ("y", y), ("t", t), ("minute_of_day", minute_of_day), ("day_of_week", day_of_week),
                      ("road_class", road_class), ("road_lanes", road_lanes), ("road_maxspeed", road_maxspeed),
                      ("poi_category", poi_cat), ("poi_log_count", poi_log_count), ("road_km", road_km)):
        points[name] = np.split(arr, cut) if len(sel) else []
    points["has_poi"] = pois is not None
    points["has_road"] = segments is not None
    rejected = pd.Series([r for r in reasons if r is not None], dtype=object)
    qc = stage_counts("points", n_in, len(points), rejected)
    return points[POINT_COLUMNS], qc
