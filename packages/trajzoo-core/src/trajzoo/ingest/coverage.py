"""The area a city's road network covers, so trips that leave it are rejected at ingest.

A trip that leaves the road network cannot be map-matched: its fixes out there find no road
within the candidate search radius and FMM splits the trip (most San Francisco FMM failures came
from fixes outside the OSM extract, whose configured bounding box was wider than the network).
The usable area is derived from the network itself: every point within ``network_buffer_m``
metres of a road segment (a buffer around the network, in the city's projected CRS). An OSM
extract holds the ways that *touch* its box, so the network's bounding rectangle is larger than
the area it covers (ways stick out of the box); the buffer follows the roads instead, and when
the extract declares its box (``<bounds>`` in the OSM XML, as osmfilter and Overpass write it),
fixes must also lie inside that box grown by the same buffer: beyond it only the stubs of the
ways that cross it are mapped, and a trip out there finds no road for most of its fixes.
"""
from __future__ import annotations

import bz2
import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import shapely


#: Classes of a grid cell of :meth:`NetworkCoverage._cell_grid`.
CELL_OUTSIDE, CELL_INSIDE, CELL_EDGE = 0, 1, 2
#: Queries of fewer fixes are answered by distance queries alone (the grid is built lazily).
GRID_MIN_QUERY = 10_000
#: Most cells of the grid (the cell side grows beyond ``buffer / 5`` to stay under it).
GRID_MAX_CELLS = 4_000_000
#: Safety margin (m) of the cell classes against floating-point rounding.
GRID_MARGIN_M = 1e-3


class NetworkCoverage:
    """Every point within ``buffer_m`` metres of a road segment of the network.

    Attributes:
        crs: the projected CRS of the segments (the city's ``crs``, e.g. ``"EPSG:32629"``).
        buffer_m: the distance (m) a fix may lie from the nearest road segment.
        extent: ``(xmin, ymin, xmax, ymax)`` of the segments grown by ``buffer_m`` (m).
        bounds: the extract's declared ``[min_lon, min_lat, max_lon, max_lat]`` grown by
            ``buffer_m`` (degrees), or None when the extract declares none.
    """

    def __init__(self, geometries: np.ndarray, crs: str, buffer_m: float, bounds: list[float] | None = None):
        """Args: geometries: ``(n,)`` shapely LineStrings in ``crs`` metres (n >= 1);
        crs: their projected CRS; buffer_m: metres (>= 0); bounds: the OSM extract's declared
        box ``[min_lon, min_lat, max_lon, max_lat]`` (degrees, :func:`osm_bounds`) or None.

        Raises:
            ValueError: no geometry, or a negative buffer.
        """
        if len(geometries) == 0:
            raise ValueError("network coverage of an empty road network (no segments)")
        if not buffer_m >= 0:
            raise ValueError(f"network_buffer_m must be >= 0, got {buffer_m}")
        self.crs = crs
        self.buffer_m = float(buffer_m)
        self._tree = shapely.STRtree(geometries)
        xmin, ymin, xmax, ymax = (float(v) for v in shapely.total_bounds(geometries))
        b = self.buffer_m
        self.extent = (xmin - b, ymin - b, xmax + b, ymax + b)
        self._to_xy = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        self.bounds = None
        if bounds is not None:
            dlat = b / 111_195.0  # metres -> degrees (mean Earth radius), at the box's middle latitude
            dlon = dlat / np.cos(np.radians((bounds[1] + bounds[3]) / 2))
            self.bounds = [bounds[0] - dlon, bounds[1] - dlat, bounds[2] + dlon, bounds[3] + dlat]
        self._bbox = tuple(self.bounds) if self.bounds is not None else self._extent_degrees()
        self._grid = None  # the cell classes of :meth:`_cell_grid`, built on the first large query

    def __repr__(self) -> str:
        return (f"NetworkCoverage({self.crs}, {len(self._tree)} segments + {self.buffer_m:g} m, "
                f"bbox {[round(v, 5) for v in self._bbox]})")

    def contains(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """``(n,)`` bool: which fixes (degrees, EPSG:4326) lie within ``buffer_m`` of a road.

        A non-finite or out-of-range coordinate is not contained. From :data:`GRID_MIN_QUERY`
        fixes on, a grid of cells classed once (:meth:`_cell_grid`) settles the fixes of cells
        wholly inside or outside the buffer and only the rest get a distance query (same answer,
        about 10x faster on city data).
        """
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        inside = np.zeros(len(lon), dtype=bool)
        valid = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
        if self.bounds is not None:
            w, s_, e, n = self.bounds
            valid &= (lon >= w) & (lon <= e) & (lat >= s_) & (lat <= n)
        if not valid.any():
            return inside
        x, y = self._to_xy.transform(lon[valid], lat[valid])
        x, y = np.asarray(x), np.asarray(y)
        xmin, ymin, xmax, ymax = self.extent
        in_box = (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)  # cheap pre-test
        idx = np.flatnonzero(in_box)
        settled = np.zeros(len(x), dtype=bool)
        if len(idx) >= GRID_MIN_QUERY:
            # cells wholly inside (or wholly outside) the buffer settle their fixes without a
            # distance query; only fixes in cells the buffer's edge may cross are queried
            cls = self._cell_classes(x[idx], y[idx])
            settled[idx[cls == CELL_INSIDE]] = True
            idx = idx[cls == CELL_EDGE]
        if len(idx):
            pts = shapely.points(x[idx], y[idx])
            hit = np.zeros(len(idx), dtype=bool)
            # most fixes lie on a road: a short dwithin query (few pairs) settles them, and a
            # nearest-road query within the buffer the rest (one pair per fix, not every road near it)
            hit[self._tree.query(pts, predicate="dwithin", distance=min(self.buffer_m, 20.0))[0]] = True
            rest = np.flatnonzero(~hit)
            if len(rest) and self.buffer_m > 20.0:
                hit[rest[self._tree.query_nearest(pts[rest], max_distance=self.buffer_m, all_matches=False)[0]]] = True
            settled[idx[hit]] = True
        inside[np.flatnonzero(valid)] = settled
        return inside

    def _cell_classes(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``(n,)`` int8 class of the grid cell holding each point (metres, inside :attr:`extent`):
        :data:`CELL_INSIDE`, :data:`CELL_OUTSIDE` or :data:`CELL_EDGE` (see :meth:`_cell_grid`)."""
        if self._grid is None:
            self._grid = self._cell_grid()
        grid, x0, y0, size = self._grid
        ix = np.clip(((x - x0) // size).astype(np.int64), 0, grid.shape[1] - 1)
        iy = np.clip(((y - y0) // size).astype(np.int64), 0, grid.shape[0] - 1)
        return grid[iy, ix]

    def _cell_grid(self) -> tuple[np.ndarray, float, float, float]:
        """Square cells over :attr:`extent`, each classed by the distance ``d`` from its centre to
        the nearest road and its half diagonal ``h`` (triangle inequality, so the class is exact
        for every point of the closed cell): inside when ``d + h < buffer`` (every point is within
        the buffer), outside when ``d - h > buffer``, else edge (points tested one by one).

        The cell side is ``buffer / 5`` (10 m at least, larger if the extent would need more than
        :data:`GRID_MAX_CELLS` cells). Returns ``(classes (ny, nx) int8, x0, y0, side_m)``.
        """
        xmin, ymin, xmax, ymax = self.extent
        size = max(self.buffer_m / 5.0, 10.0, np.sqrt((xmax - xmin) * (ymax - ymin) / GRID_MAX_CELLS))
        nx = max(int(np.ceil((xmax - xmin) / size)), 1)
        ny = max(int(np.ceil((ymax - ymin) / size)), 1)
        gx, gy = np.meshgrid(xmin + (np.arange(nx) + 0.5) * size, ymin + (np.arange(ny) + 0.5) * size)
        half_diag = size * np.sqrt(0.5)
        centres = shapely.points(gx.ravel(), gy.ravel())
        (found, _), dist = self._tree.query_nearest(centres, max_distance=self.buffer_m + half_diag + 1.0,
                                                    return_distance=True, all_matches=False)
        d = np.full(len(centres), np.inf)
        d[found] = dist
        classes = np.full(len(centres), CELL_EDGE, dtype=np.int8)
        classes[d + half_diag < self.buffer_m - GRID_MARGIN_M] = CELL_INSIDE
        classes[d - half_diag > self.buffer_m + GRID_MARGIN_M] = CELL_OUTSIDE
        return classes.reshape(ny, nx), xmin, ymin, size

    def bbox_degrees(self) -> list[float]:
        """``[min_lon, min_lat, max_lon, max_lat]`` (degrees): :attr:`bounds` if the extract declares
        its box, else the box enclosing :attr:`extent`; the default bounding box of a city that
        configures none."""
        return list(self._bbox)

    def _extent_degrees(self) -> tuple[float, float, float, float]:
        xmin, ymin, xmax, ymax = self.extent
        s = np.linspace(0.0, 1.0, 65)  # the edges are curves in degrees: sample them
        xs = np.concatenate([xmin + s * (xmax - xmin), np.full(65, xmax), xmax - s * (xmax - xmin), np.full(65, xmin)])
        ys = np.concatenate([np.full(65, ymin), ymin + s * (ymax - ymin), np.full(65, ymax), ymax - s * (ymax - ymin)])
        lon, lat = pyproj.Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
        return (float(np.min(lon)), float(np.min(lat)), float(np.max(lon)), float(np.max(lat)))


def osm_bounds(path: Path) -> list[float] | None:
    """The ``<bounds minlat= minlon= maxlat= maxlon=/>`` an OSM XML extract declares, or None.

    Reads only the start of the file (before the first element after the header); ``.osm``,
    ``.osm.bz2`` and ``.osm.gz`` are read; an ``.osm.pbf`` gives its header's box (read with
    pyosmium), anything else None.

    Returns:
        ``[min_lon, min_lat, max_lon, max_lat]`` (degrees) or None.
    """
    path = Path(path)
    name = path.name.lower()
    opener = bz2.open if name.endswith(".bz2") else gzip.open if name.endswith(".gz") else open
    if name.endswith(".pbf"):
        return _pbf_bounds(path)
    if not (name.endswith(".osm") or name.endswith(".osm.bz2") or name.endswith(".osm.gz") or name.endswith(".xml")):
        return None
    try:
        with opener(path, "rb") as f:
            head = f.read(1 << 14).decode("utf-8", errors="replace")
    except (OSError, EOFError):
        return None
    m = re.search(r"<bounds\b([^>]*)/?>", head)
    if not m:
        return None
    attrs = dict(re.findall(r'(\w+)\s*=\s*["\']([^"\']*)["\']', m.group(1)))
    try:
        return [float(attrs["minlon"]), float(attrs["minlat"]), float(attrs["maxlon"]), float(attrs["maxlat"])]
    except (KeyError, ValueError):
        return None


def _pbf_bounds(path: Path) -> list[float] | None:
    """The bounding box of an OSM PBF header (pyosmium), or None if it declares none."""
    import osmium

    try:
        box = osmium.io.Reader(str(path), osmium.osm.osm_entity_bits.NOTHING).header().box()
    except RuntimeError:
        return None
    if not box.valid():
        return None
    return [box.bottom_left.lon, box.bottom_left.lat, box.top_right.lon, box.top_right.lat]


def network_coverage(segments: pd.DataFrame, crs: str, buffer_m: float, bounds: list[float] | None = None
                     ) -> NetworkCoverage:
    """The area within ``buffer_m`` metres of a road network's segments.

    Args:
        segments: road segment table with ``geometry_wkt`` in ``crs`` metres
            (:func:`trajzoo.roads.network.build_road_network`).
        crs: the projected CRS of the geometries.
        buffer_m: metres a fix may lie from the nearest segment (>= 0).
        bounds: the extract's declared box (:func:`osm_bounds`), grown by ``buffer_m``; None: none.

    Returns:
        A :class:`NetworkCoverage`.

    Raises:
        ValueError: no segments, or a negative buffer.
    """
    return NetworkCoverage(shapely.from_wkt(segments["geometry_wkt"].to_numpy()), crs, buffer_m, bounds)


def read_network_coverage(segments_path: Path, crs: str, buffer_m: float, osm_file: Path | None = None
                          ) -> NetworkCoverage:
    """:func:`network_coverage` of a ``segments.parquet`` (reads its geometry column only), with
    the declared box of ``osm_file`` (:func:`osm_bounds`) when given."""
    bounds = osm_bounds(osm_file) if osm_file is not None else None
    return network_coverage(pd.read_parquet(segments_path, columns=["geometry_wkt"]), crs, buffer_m, bounds)
