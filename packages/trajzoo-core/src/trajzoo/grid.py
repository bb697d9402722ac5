"""Grid cells with POI semantics: the grid view of a trajectory (SMARTraj2).

SMARTraj2 (paper ``smartraj2.txt``, Section "Feature disentanglement" and the data preparation
appendix) describes a trajectory in three views; its **grid view** ``T^g`` replaces each GPS point by
the index of the grid cell containing it, and each cell carries a semantic vector: the counts of
its POIs per category, normalised per cell ("Each grid cell's semantic representation is
normalized based on the POIs it contains"). The GPS encoder groups the points of a trip by cell
with the binary assignment matrix ``B^{p|g}`` (point -> cell).

Here the grid is square, in the city's projected CRS (metres): origin at the floor (whole metres)
of the projected minimum corner of the city's lon/lat bounding box, cell size ``cell_m`` metres,
cells numbered row-major from the south-west corner, ``cell_id = iy * n_x + ix``. POI categories
are those of :data:`trajzoo.data.points.POI_CATEGORIES` (13, like the paper's 13), assigned by
:func:`trajzoo.points.read_pois` from the OSM key/value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from trajzoo.data.points import POI_CATEGORIES
from trajzoo.points import read_pois
from trajzoo.qc import stage_counts

#: POI count columns of :func:`poi_cell_table`, one per category of :data:`POI_CATEGORIES`.
POI_COUNT_COLUMNS: list[str] = [f"n_{c}" for c in POI_CATEGORIES]
#: The same counts normalised per cell (each row sums to 1).
POI_SHARE_COLUMNS: list[str] = [f"p_{c}" for c in POI_CATEGORIES]
#: Columns of :func:`poi_cell_table`.
CELL_COLUMNS: list[str] = ["cell_id", "ix", "iy", "x", "y", "n_pois", *POI_COUNT_COLUMNS, *POI_SHARE_COLUMNS]
#: Columns of :func:`trip_cell_sequences`.
TRIP_CELL_COLUMNS: list[str] = ["trip_id", "n_points", "cells", "n_cells", "point_cells", "point_visit",
                                "n_outside"]
#: Edge points per side when projecting the bounding box (its edges are curves in the projected CRS).
_EDGE_POINTS = 33


@dataclass(frozen=True)
class GridSpec:
    """A square grid in a projected CRS (SMARTraj2 grid view).

    Cell ``(ix, iy)`` covers ``[x0 + ix * cell_m, x0 + (ix + 1) * cell_m) x
    [y0 + iy * cell_m, y0 + (iy + 1) * cell_m)`` metres, ``0 <= ix < n_x``, ``0 <= iy < n_y``; its id
    is ``iy * n_x + ix`` (row-major from the south-west corner).

    Attributes:
        x0, y0: origin (south-west corner of cell 0), metres in the city's projected CRS.
        n_x, n_y: number of cells east-west and south-north (>= 1).
        cell_m: side of a cell, metres (> 0).
    """

    x0: float
    y0: float
    n_x: int
    n_y: int
    cell_m: float

    @property
    def n_cells(self) -> int:
        """``n_x * n_y``."""
        return self.n_x * self.n_y

    def centres(self, cell_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centres of cells: ``(K,)`` ids -> ``(x, y)``, each ``(K,)`` float64 metres.

        Raises:
            ValueError: an id is outside ``[0, n_cells)``.
        """
        ids = np.asarray(cell_ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_cells):
            raise ValueError(f"cell ids must lie in [0, {self.n_cells}); got {ids.min()}..{ids.max()}")
        ix, iy = ids % self.n_x, ids // self.n_x
        return self.x0 + (ix + 0.5) * self.cell_m, self.y0 + (iy + 0.5) * self.cell_m


def _transformer(crs: str):
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:4326", crs, always_xy=True)


def project(lon: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Degrees (EPSG:4326, lon/lat order) -> metres in ``crs``: ``(N,)``, ``(N,)`` -> ``(N,)``, ``(N,)``
    float64; a point pyproj cannot project gives inf/NaN (then it is outside every grid)."""
    x, y = _transformer(crs).transform(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def grid_spec(bbox_lonlat: Sequence[float], crs: str, cell_m: float) -> GridSpec:
    """The grid covering a city's bounding box.

    The bounding box is projected with densified edges (its edges are curves in a projected CRS),
    the origin is the floor (whole metres) of the projected minimum x and y, and there are
    ``floor((max - origin) / cell_m) + 1`` cells per axis, so every point of the box (edges
    included) lies in a cell.

    Args:
        bbox_lonlat: ``[min_lon, min_lat, max_lon, max_lat]`` degrees (as in the city config).
        crs: the city's projected CRS (metres), e.g. ``"EPSG:32629"``.
        cell_m: cell side, metres.

    Returns:
        :class:`GridSpec`.

    Raises:
        ValueError: ``cell_m`` is not a positive finite number; the bbox does not have four finite
            numbers, is empty (min >= max on an axis) or outside [-180, 180] x [-90, 90]; or the
            box cannot be projected into ``crs``.

    Source: SMARTraj2 grid view (square cells in metres; see the module docstring).
    """
    try:
        cell = float(cell_m)
    except (TypeError, ValueError):
        raise ValueError(f"grid cell size must be a number of metres, got {cell_m!r}") from None
    if not math.isfinite(cell) or cell <= 0:
        raise ValueError(f"grid cell size must be a positive number of metres, got {cell_m!r}")
    try:
        box = [float(v) for v in bbox_lonlat]
    except (TypeError, ValueError):
        raise ValueError(f"bbox must be [min_lon, min_lat, max_lon, max_lat] in degrees, got {bbox_lonlat!r}") from None
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise ValueError(f"bbox must be four finite numbers [min_lon, min_lat, max_lon, max_lat], got {bbox_lonlat!r}")
    lon0, lat0, lon1, lat1 = box
    if not (lon0 < lon1 and lat0 < lat1):
        raise ValueError(f"bbox {bbox_lonlat!r} is empty: need min_lon < max_lon and min_lat < max_lat")
    if not (-180 <= lon0 and lon1 <= 180 and -90 <= lat0 and lat1 <= 90):
        raise ValueError(f"bbox {bbox_lonlat!r} is not within [-180, 180] x [-90, 90] degrees")
    t = np.linspace(0.0, 1.0, _EDGE_POINTS)
    lon = np.concatenate([lon0 + (lon1 - lon0) * t, np.full_like(t, lon1), lon1 - (lon1 - lon0) * t,
                          np.full_like(t, lon0)])
    lat = np.concatenate([np.full_like(t, lat0), lat0 + (lat1 - lat0) * t, np.full_like(t, lat1),
                          lat1 - (lat1 - lat0) * t])
    x, y = project(lon, lat, crs)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"bbox {bbox_lonlat!r} cannot be projected into {crs}")
    x0, y0 = math.floor(x.min()), math.floor(y.min())
    n_x = int(math.floor((x.max() - x0) / cell)) + 1
    n_y = int(math.floor((y.max() - y0) / cell)) + 1
    return GridSpec(x0=float(x0), y0=float(y0), n_x=n_x, n_y=n_y, cell_m=cell)


def cell_of(spec: GridSpec, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cell id of points: ``(N,)`` x, y metres (in the grid's CRS) -> ``(N,)`` int64 ids
    ``iy * n_x + ix``; -1 for a point outside the grid or with a non-finite coordinate.

    A point on a cell's west/south edge belongs to that cell; on its east/north edge to the next.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"cell_of: x and y differ in shape, {x.shape} vs {y.shape}")
    with np.errstate(invalid="ignore"):
        fx = np.floor((x - spec.x0) / spec.cell_m)
        fy = np.floor((y - spec.y0) / spec.cell_m)
        inside = np.isfinite(fx) & np.isfinite(fy) & (fx >= 0) & (fx < spec.n_x) & (fy >= 0) & (fy < spec.n_y)
    ix = np.where(inside, fx, 0).astype(np.int64)
    iy = np.where(inside, fy, 0).astype(np.int64)
    return np.where(inside, iy * spec.n_x + ix, -1).astype(np.int64)


def _empty_cells() -> pd.DataFrame:
    cols = {"cell_id": np.int64, "ix": np.int64, "iy": np.int64, "x": np.float64, "y": np.float64,
            "n_pois": np.int64, **dict.fromkeys(POI_COUNT_COLUMNS, np.int64),
            **dict.fromkeys(POI_SHARE_COLUMNS, np.float64)}
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in cols.items()})


def poi_cell_table(spec: GridSpec, pois_df: pd.DataFrame | None, crs: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """POI-category counts per grid cell, raw and normalised per cell (SMARTraj2 grid semantics).

    Args:
        spec: the grid (:func:`grid_spec`).
        pois_df: :func:`trajzoo.points.read_pois` output: columns lon, lat (degrees), category (one
            of :data:`POI_CATEGORIES`; any other value counts as "other"). None or empty: a city
            without POI data.
        crs: the grid's projected CRS (metres).

    Returns:
        ``(cells, qc)``. ``cells``: one row per cell holding at least one POI, sorted by cell_id,
        columns :data:`CELL_COLUMNS`: cell_id, ix, iy (int64), x, y (float64, the cell centre in
        metres), n_pois (int64), ``n_<category>`` (int64 counts, :data:`POI_COUNT_COLUMNS`) and
        ``p_<category>`` (float64 counts / n_pois, each row sums to 1, :data:`POI_SHARE_COLUMNS`).
        Empty with the same columns when there are no POIs. ``qc``: columns stage, outcome, count
        for stage ``grid_pois`` counting POIs (not trips): ``in`` (rows of ``pois_df``), ``kept``
        (in a cell) and ``rejected:outside_grid`` (outside the grid or not projectable), so
        in = kept + rejected.

    Raises:
        ValueError: ``pois_df`` lacks a column lon, lat or category.
    """
    if pois_df is None:
        pois_df = pd.DataFrame({"lon": [], "lat": [], "category": []})
    missing = [c for c in ("lon", "lat", "category") if c not in pois_df.columns]
    if missing:
        raise ValueError(f"poi_cell_table: POI table lacks column(s) {missing}; read POI files with "
                         "trajzoo.points.read_pois")
    n_in = len(pois_df)
    if n_in == 0:
        return _empty_cells(), stage_counts("grid_pois", 0, 0, pd.Series([], dtype=object))
    x, y = project(pois_df["lon"].to_numpy(np.float64), pois_df["lat"].to_numpy(np.float64), crs)
    cell = cell_of(spec, x, y)
    inside = cell >= 0
    qc = stage_counts("grid_pois", n_in, int(inside.sum()), pd.Series(["outside_grid"] * int((~inside).sum())))
    if not inside.any():
        return _empty_cells(), qc
    index = {c: i for i, c in enumerate(POI_CATEGORIES)}
    other = index["other"]
    cat = np.array([index.get(str(c), other) for c in pois_df["category"]], dtype=np.int64)[inside]
    ids, inverse = np.unique(cell[inside], return_inverse=True)
    counts = np.zeros((len(ids), len(POI_CATEGORIES)), dtype=np.int64)
    np.add.at(counts, (inverse, cat), 1)
    total = counts.sum(axis=1)
    cx, cy = spec.centres(ids)
    out = pd.DataFrame({"cell_id": ids.astype(np.int64), "ix": (ids % spec.n_x).astype(np.int64),
                        "iy": (ids // spec.n_x).astype(np.int64), "x": cx, "y": cy, "n_pois": total})
    out = pd.concat([out, pd.DataFrame(counts, columns=POI_COUNT_COLUMNS),
                     pd.DataFrame(counts / total[:, None], columns=POI_SHARE_COLUMNS)], axis=1)
    return out[CELL_COLUMNS], qc


def poi_cells_from_files(spec: GridSpec, paths: Sequence[Path], crs: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`poi_cell_table` of the POI CSV files ``paths`` read by :func:`trajzoo.points.read_pois`
    (an empty list: a city without POIs). Raises InputFileError as read_pois does."""
    return poi_cell_table(spec, read_pois(list(paths)), crs)


def trip_cell_sequences(spec: GridSpec, trips_df: pd.DataFrame, crs: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grid view of trips: the visited cells and the cell of every GPS fix (SMARTraj2 ``T^g``, ``B^{p|g}``).

    Args:
        spec: the grid (:func:`grid_spec`).
        trips_df: the ingest table (:data:`trajzoo.ingest.TRIP_COLUMNS`): trip_id and per trip the
            list columns lon, lat (degrees; timestamps is not needed).
        crs: the grid's projected CRS (metres).

    Returns:
        ``(sequences, qc)``. ``sequences``: one row per kept trip, input order, columns
        :data:`TRIP_CELL_COLUMNS`: trip_id (str); n_points (int64 fixes); cells (int64 list, the
        visited cells in order, consecutive duplicates collapsed, fixes outside the grid skipped);
        n_cells (int64, its length); point_cells (int64 list, one per fix: its cell id, -1 outside
        the grid); point_visit (int64 list, one per fix: index into ``cells`` of its visit, -1
        outside; the compact form of the assignment matrix ``B^{p|g}``, ``B[i, point_visit[i]] = 1``);
        n_outside (int64 fixes outside the grid or not projectable). ``qc``: stage ``grid`` counting
        trips (in = kept + rejected; reasons ``point_lists_differ_in_length``, ``no_points``,
        ``no_fix_in_grid``), plus two rows counting GPS fixes (not trips) of the trips with
        well-formed point lists (kept or rejected as ``no_fix_in_grid``): ``fixes_in`` and
        ``fixes_outside_grid``, so fixes_in = fixes in a cell + fixes_outside_grid (none is
        dropped silently).

    Raises:
        ValueError: ``trips_df`` lacks trip_id, lon or lat.
    """
    missing = [c for c in ("trip_id", "lon", "lat") if c not in trips_df.columns]
    if missing:
        raise ValueError(f"trip_cell_sequences: trips table lacks column(s) {missing}")
    n_in = len(trips_df)
    lon_l = [np.asarray(v, dtype=np.float64) for v in trips_df["lon"]]
    lat_l = [np.asarray(v, dtype=np.float64) for v in trips_df["lat"]]
    reasons = np.full(n_in, None, dtype=object)
    for i, (a, b) in enumerate(zip(lon_l, lat_l)):
        if len(a) != len(b):
            reasons[i] = "point_lists_differ_in_length"
        elif len(a) == 0:
            reasons[i] = "no_points"
    sel = np.array([i for i in range(n_in) if reasons[i] is None], dtype=np.int64)
    lens = np.array([len(lon_l[i]) for i in sel], dtype=np.int64)
    lon = np.concatenate([lon_l[i] for i in sel]) if len(sel) else np.zeros(0)
    lat = np.concatenate([lat_l[i] for i in sel]) if len(sel) else np.zeros(0)
    x, y = project(lon, lat, crs)
    cell_all = cell_of(spec, x, y)
    bounds = np.concatenate([[0], np.cumsum(lens)])
    ids = trips_df["trip_id"].astype(str).to_numpy()
    rows = []
    kept = []
    for k, i in enumerate(sel):
        pc = cell_all[bounds[k]:bounds[k + 1]]
        inside = pc >= 0
        if not inside.any():
            reasons[i] = "no_fix_in_grid"
            continue
        c = pc[inside]
        new = np.concatenate([[True], c[1:] != c[:-1]])
        visit_in = np.cumsum(new) - 1
        visit = np.full(len(pc), -1, dtype=np.int64)
        visit[inside] = visit_in
        cells = c[new].astype(np.int64)
        rows.append((ids[i], int(len(pc)), cells, int(len(cells)), pc.astype(np.int64), visit,
                     int((~inside).sum())))
        kept.append(i)
    out = pd.DataFrame(rows, columns=TRIP_CELL_COLUMNS)
    for col in ("n_points", "n_cells", "n_outside"):
        out[col] = out[col].astype(np.int64)
    out["trip_id"] = out["trip_id"].astype(str)
    rejected = pd.Series([r for r in reasons if r is not None], dtype=object)
    qc = stage_counts("grid", n_in, len(kept), rejected)
    fixes = pd.DataFrame([{"stage": "grid", "outcome": "fixes_in", "count": int(len(cell_all))},
                          {"stage": "grid", "outcome": "fixes_outside_grid", "count": int((cell_all < 0).sum())}])
    return out, pd.concat([qc, fixes], ignore_index=True)
