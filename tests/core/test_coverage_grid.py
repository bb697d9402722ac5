"""The cell grid of NetworkCoverage.contains gives the same answer as a distance query per fix."""
from __future__ import annotations

import numpy as np
import pyproj
import shapely

from trajzoo.ingest import coverage as cov_mod
from trajzoo.ingest.coverage import CELL_EDGE, NetworkCoverage

CRS = "EPSG:32629"  # Porto's UTM zone


def _network():
    x0, y0 = 530_000.0, 4_555_000.0  # central Porto, metres
    lines = [shapely.LineString([(x0, y0), (x0 + 3000, y0)]),
             shapely.LineString([(x0 + 500, y0 - 1500), (x0 + 900, y0 + 1800), (x0 + 2500, y0 + 2100)]),
             shapely.LineString([(x0 + 2000, y0 - 800), (x0 + 2001, y0 - 790)])]  # a stub
    return np.array(lines, dtype=object), x0, y0


def _fixes(x0, y0, n=40_000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(x0 - 600, x0 + 3600, n)
    y = rng.uniform(y0 - 2100, y0 + 2700, n)
    lon, lat = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def test_grid_equals_per_fix_queries_and_the_distance(monkeypatch):
    lines, x0, y0 = _network()
    lon, lat = _fixes(x0, y0)
    buffer_m = 250.0
    with_grid = NetworkCoverage(lines, CRS, buffer_m)
    got = with_grid.contains(lon, lat)
    assert with_grid._grid is not None  # the grid answered this query
    cls = with_grid._cell_classes(*pyproj.Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(lon, lat))
    assert (cls == CELL_EDGE).mean() < 0.5  # most fixes settled by their cell
    monkeypatch.setattr(cov_mod, "GRID_MIN_QUERY", 10 ** 12)
    exact = NetworkCoverage(lines, CRS, buffer_m).contains(lon, lat)
    np.testing.assert_array_equal(got, exact)
    # and both are the definition: distance to the nearest road <= buffer (ties at the edge aside)
    x, y = pyproj.Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(lon, lat)
    d = shapely.distance(shapely.points(x, y)[:, None], lines[None, :]).min(axis=1)
    clear = np.abs(d - buffer_m) > 1e-6
    np.testing.assert_array_equal(got[clear], (d <= buffer_m)[clear])
    assert 0.1 < got.mean() < 0.9  # both classes are well represented


def test_grid_on_fixes_at_the_buffer_edge(monkeypatch):
    """Fixes within a few cm of the 250 m edge of a straight road (ties and near-ties): the grid
    leaves them to the distance query, so the answer is the grid-free one."""
    lines, x0, y0 = _network()
    rng = np.random.default_rng(1)
    n = 20_000
    x = rng.uniform(x0 + 1200, x0 + 2900, n)
    y = y0 + 250.0 + rng.uniform(-0.05, 0.05, n) * rng.choice([-1, 1], n)
    lon, lat = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(x, y)
    got = NetworkCoverage(lines, CRS, 250.0).contains(lon, lat)
    monkeypatch.setattr(cov_mod, "GRID_MIN_QUERY", 10 ** 12)
    exact = NetworkCoverage(lines, CRS, 250.0).contains(lon, lat)
    np.testing.assert_array_equal(got, exact)
    assert 0.2 < got.mean() < 0.8
