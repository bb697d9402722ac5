"""trajzoo.figures on small synthetic inputs: GPS-to-road distances, the route map's content,
GeoParquet with its CRS, and that every figure function writes its file."""
from __future__ import annotations

import numpy as np
import pandas as pd
from pyproj import Transformer

from trajzoo import figures

CRS = "EPSG:32629"


def _toy():
    segments = pd.DataFrame({"segment_id": [0, 1], "u": [1, 2], "v": [2, 3], "length": [100.0, 100.0],
                             "geometry_wkt": ["LINESTRING (530000 4550000, 530100 4550000)",
                                              "LINESTRING (530100 4550000, 530100 4550100)"]})
    to_deg = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    lon, lat = to_deg.transform(np.array([530010.0, 530050.0, 530130.0]), np.array([4550005.0, 4549990.0, 4550050.0]))
    trips = pd.DataFrame({"trip_id": ["a"], "lon": [lon], "lat": [lat]})
    matched = pd.DataFrame({"trip_id": ["a"], "roads": [np.array([0, 1])]})
    return segments, trips, matched


def test_gps_to_road_distances_exact():
    segments, trips, _ = _toy()
    np.testing.assert_allclose(figures.gps_road_distances(segments, trips, CRS), [5.0, 10.0, 30.0], atol=1e-3)


def test_route_map_is_self_contained_svg(tmp_path):
    segments, trips, matched = _toy()
    out = tmp_path / "routes.html"
    assert figures.route_map_html(segments, trips, matched, CRS, out, "toy") == 1
    page = out.read_text()
    assert page.count("<circle") == 3 and page.count("<path") == 4  # 2 network + 2 route segments
    assert "http" not in page.replace("http-equiv", "")  # no tile server, no remote script


def test_geoparquet_keeps_the_crs(tmp_path):
    import geopandas as gpd

    segments, _, _ = _toy()
    figures.write_segments_geoparquet(segments, CRS, tmp_path / "s.geoparquet")
    g = gpd.read_parquet(tmp_path / "s.geoparquet")
    assert g.crs.to_epsg() == 32629 and list(g["segment_id"]) == [0, 1] and g.geometry.length.tolist() == [100.0, 100.0]


def test_every_plot_writes_its_file(tmp_path):
    rng = np.random.default_rng(0)
    emb = pd.DataFrame({"trip_id": [f"t{i}" for i in range(20)], "embedding": list(rng.normal(size=(20, 4)))})
    labels = pd.Series(["A", "B"] * 10, index=emb["trip_id"])
    figures.plot_embedding_projection({"m": emb}, labels, "call type", tmp_path / "e.png", "toy")
    pred = pd.DataFrame({"trip_id": ["a", "b"], "y_true": [5.0, 7.0], "y_pred": [6.0, 6.5]})
    figures.plot_tte_predictions({"m (in-city)": pred}, tmp_path / "t.png", "toy")
    table = pd.DataFrame({"variant": ["full", "no-x", "full", "no-x"], "task": ["tte"] * 4, "metric": ["MAE"] * 4,
                          "value": [1.0, 2.0, 1.2, 2.2], "seed": [0, 0, 1, 1]})
    figures.plot_ablations(table, tmp_path / "a.png", "toy", "m")
    figures.plot_gps_road_distances(np.array([1.0, 5.0, 20.0]), tmp_path / "d.png", "toy", 1, 50)
    for name in ("e.png", "t.png", "a.png", "d.png"):
        assert (tmp_path / name).stat().st_size > 5000
