"""The area a city's road network covers, so trips that leave it are rejected at ingest.

A trip that leaves the road network cannot be map-matched: its fixes out there find no road
within the candidate search radius and FMM splits the trip (most San Francisco FMM failures came
from fixes outside the OSM extract, whose configured bounding box was wider than the network).
The usable area is derived from the network itself: every point within ``network_buffer_m``
metres of a road segment (a buffer around the network, in the city's projected CRS). An OSM
extract holds the ways that *touch* its box, so the network's bounding rectangle is larger than
the area it covers (ways stick out of the box); the buffer follows the roads instead.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import shapely


class NetworkCoverage:
    """Every point within ``buffer_m`` metres of a road segment of the network.

    Attributes:
        crs: the projected CRS of the segments (the city's ``crs``, e.g. ``"EPSG:32629"``).
        buffer_m: the distance (m) a fix may lie from the nearest road segment.
        extent: ``(xmin, ymin, xmax, ymax)`` of the segments grown by ``buffer_m`` (m).
    """

    def __init__(self, geometries: np.ndarray, crs: str, buffer_m: float):
        """Args: geometries: ``(n,)`` shapely LineStrings in ``crs`` metres (n >= 1);
        crs: their projected CRS; buffer_m: metres (>= 0).

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
        self._bbox = self._extent_degrees()

    def __repr__(self) -> str:
        return (f"NetworkCoverage({self.crs}, {len(self._tree)} segments + {self.buffer_m:g} m, "
                f"bbox {[round(v, 5) for v in self._bbox]})")

    def contains(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """``(n,)`` bool: which fixes (degrees, EPSG:4326) lie within ``buffer_m`` of a road.

        A non-finite or out-of-range coordinate is not contained.
        """
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        inside = np.zeros(len(lon), dtype=bool)
        valid = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
        if not valid.any():
            return inside
        x, y = self._to_xy.transform(lon[valid], lat[valid])
        x, y = np.asarray(x), np.asarray(y)
        xmin, ymin, xmax, ymax = self.extent
        in_box = (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)  # cheap pre-test
        idx = np.flatnonzero(in_box)
        if len(idx):
            pts = shapely.points(x[idx], y[idx])
            hit = np.zeros(len(idx), dtype=bool)
            # most fixes lie on a road: a short dwithin query (few pairs) settles them, and a
            # nearest-road query within the buffer the rest (one pair per fix, not every road near it)
            hit[self._tree.query(pts, predicate="dwithin", distance=min(self.buffer_m, 20.0))[0]] = True
            rest = np.flatnonzero(~hit)
            if len(rest) and self.buffer_m > 20.0:
                hit[rest[self._tree.query_nearest(pts[rest], max_distance=self.buffer_m, all_matches=False)[0]]] = True
            sub = np.zeros(len(x), dtype=bool)
            sub[idx[hit]] = True
            inside[np.flatnonzero(valid)] = sub
        return inside

    def bbox_degrees(self) -> list[float]:
        """``[min_lon, min_lat, max_lon, max_lat]`` (degrees) enclosing :attr:`extent`: the default
        bounding box of a city that configures none."""
        return list(self._bbox)

    def _extent_degrees(self) -> tuple[float, float, float, float]:
        xmin, ymin, xmax, ymax = self.extent
        s = np.linspace(0.0, 1.0, 65)  # the edges are curves in degrees: sample them
        xs = np.concatenate([xmin + s * (xmax - xmin), np.full(65, xmax), xmax - s * (xmax - xmin), np.full(65, xmin)])
        ys = np.concatenate([np.full(65, ymin), ymin + s * (ymax - ymin), np.full(65, ymax), ymax - s * (ymax - ymin)])
        lon, lat = pyproj.Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
        return (float(np.min(lon)), float(np.min(lat)), float(np.max(lon)), float(np.max(lat)))


def network_coverage(segments: pd.DataFrame, crs: str, buffer_m: float) -> NetworkCoverage:
    """The area within ``buffer_m`` metres of a road network's segments.

    Args:
        segments: road segment table with ``geometry_wkt`` in ``crs`` metres
            (:func:`trajzoo.roads.network.build_road_network`).
        crs: the projected CRS of the geometries.
        buffer_m: metres a fix may lie from the nearest segment (>= 0).

    Returns:
        A :class:`NetworkCoverage`.

    Raises:
        ValueError: no segments, or a negative buffer.
    """
    return NetworkCoverage(shapely.from_wkt(segments["geometry_wkt"].to_numpy()), crs, buffer_m)


def read_network_coverage(segments_path: Path, crs: str, buffer_m: float) -> NetworkCoverage:
    """:func:`network_coverage` of a ``segments.parquet`` (reads its geometry column only)."""
    return network_coverage(pd.read_parquet(segments_path, columns=["geometry_wkt"]), crs, buffer_m)
