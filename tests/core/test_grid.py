"""Grid cells with POI semantics (SMARTraj2 grid view): exact cells on tiny inputs, and the Porto POIs."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from trajzoo.data.points import POI_CATEGORIES
from trajzoo.grid import (CELL_COLUMNS, POI_COUNT_COLUMNS, POI_SHARE_COLUMNS, TRIP_CELL_COLUMNS, GridSpec, cell_of,
                          grid_spec, poi_cell_table, poi_cells_from_files, trip_cell_sequences)
from trajzoo.ingest.filters import filter_trips
from trajzoo.ingest.porto import read_porto_trips
from trajzoo.points import read_pois

#: Plate carree on the WGS84 equator radius: x = R * lon (rad), y = R * lat (rad), so tiny inputs
#: have metre positions that can be written down by hand.
EQC = "+proj=eqc +lat_ts=0 +lat_0=0 +lon_0=0 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
R = 6378137.0
PORTO_BBOX = [-8.70, 41.13, -8.54, 41.195]
PORTO_CRS = "EPSG:32629"
POI_FILES = ("porto/poi/tourism_pois.csv", "porto/poi/osm_amenity_nodes.csv")


def _deg(metres):
    return np.degrees(np.asarray(metres, dtype=np.float64) / R)


def test_grid_spec_origin_and_size_by_hand():
    spec = grid_spec([0.0, 0.0, 0.01, 0.005], EQC, 100)
    # x_max = R * 0.01 deg = 1113.19 m, y_max = 556.60 m; origin floor(0) = 0
    assert (spec.x0, spec.y0, spec.cell_m) == (0.0, 0.0, 100.0)
    assert (spec.n_x, spec.n_y) == (12, 6) and spec.n_cells == 72
    shifted = grid_spec([0.001, 0.002, 0.01, 0.005], EQC, 250)
    assert shifted.x0 == math.floor(R * math.radians(0.001)) == 111
    assert shifted.y0 == math.floor(R * math.radians(0.002)) == 222
    assert shifted.n_x == math.floor((R * math.radians(0.01) - 111) / 250) + 1 == 5  # 1002.2 m / 250


def test_grid_spec_porto_covers_the_projected_box():
    from pyproj import Transformer

    spec = grid_spec(PORTO_BBOX, PORTO_CRS, 500)
    tr = Transformer.from_crs("EPSG:4326", PORTO_CRS, always_xy=True)
    # east of the UTM 29N central meridian: min x at the north-west corner, min y at the south-west one
    assert spec.x0 == math.floor(tr.transform(-8.70, 41.195)[0])
    assert spec.y0 == math.floor(tr.transform(-8.70, 41.13)[1])
    corners = np.array([tr.transform(lon, lat) for lon in (-8.70, -8.54) for lat in (41.13, 41.195)])
    assert (cell_of(spec, corners[:, 0], corners[:, 1]) >= 0).all()
    # max x at the south-east corner, max y at the north-east one
    assert spec.n_x == math.floor((tr.transform(-8.54, 41.13)[0] - spec.x0) / 500) + 1 == 27
    assert spec.n_y == math.floor((tr.transform(-8.54, 41.195)[1] - spec.y0) / 500) + 1 == 15


@pytest.mark.parametrize("bbox, cell, message", [
    ([0, 0, 1, 1], 0, "positive"), ([0, 0, 1, 1], -5, "positive"), ([0, 0, 1, 1], float("nan"), "positive"),
    ([0, 0, 0, 1], 100, "empty"), ([1, 0, 0, 1], 100, "empty"), ([0, 1, 1, 1], 100, "empty"),
    ([0, 0, 1], 100, "four"),
])
def test_grid_spec_rejects_bad_cell_size_and_empty_bbox(bbox, cell, message):
    with pytest.raises(ValueError, match=message):
        grid_spec(bbox, EQC, cell)


def test_cell_of_row_major_ids_and_outside():
    spec = GridSpec(x0=0.0, y0=0.0, n_x=3, n_y=2, cell_m=10.0)
    x = np.array([0.0, 9.99, 10.0, 15.0, 25.0, 29.9, 30.0, -0.01, 5.0, np.nan, 5.0])
    y = np.array([0.0, 0.0, 0.0, 12.0, 15.0, 19.9, 0.0, 5.0, 20.0, 1.0, np.inf])
    ids = cell_of(spec, x, y)
    assert ids.dtype == np.int64
    assert ids.tolist() == [0, 0, 1, 4, 5, 5, -1, -1, -1, -1, -1]
    cx, cy = spec.centres(np.array([0, 4, 5]))
    assert cx.tolist() == [5.0, 15.0, 25.0] and cy.tolist() == [5.0, 15.0, 15.0]
    with pytest.raises(ValueError, match="cell ids"):
        spec.centres(np.array([6]))


def test_poi_cell_table_counts_and_shares_by_hand():
    spec = GridSpec(x0=0.0, y0=0.0, n_x=3, n_y=2, cell_m=100.0)
    xy = [(50, 50, "food"), (60, 40, "food"), (70, 70, "shop"), (150, 50, "health"), (250, 150, "not-a-category"),
          (350, 50, "food")]
    pois = pd.DataFrame({"lon": _deg([p[0] for p in xy]), "lat": _deg([p[1] for p in xy]),
                         "category": [p[2] for p in xy]})
    cells, qc = poi_cell_table(spec, pois, EQC)
    assert list(cells.columns) == CELL_COLUMNS
    assert cells["cell_id"].tolist() == [0, 1, 5]
    assert cells["ix"].tolist() == [0, 1, 2] and cells["iy"].tolist() == [0, 0, 1]
    assert cells["x"].tolist() == [50.0, 150.0, 250.0] and cells["y"].tolist() == [50.0, 50.0, 150.0]
    assert cells["n_pois"].tolist() == [3, 1, 1]
    c0 = cells.iloc[0]
    assert (c0["n_food"], c0["n_shop"], c0[POI_COUNT_COLUMNS].sum()) == (2, 1, 3)
    assert c0["p_food"] == pytest.approx(2 / 3) and c0["p_shop"] == pytest.approx(1 / 3)
    assert cells.iloc[1]["p_health"] == 1.0 and cells.iloc[2]["n_other"] == 1  # unknown -> "other"
    assert np.allclose(cells[POI_SHARE_COLUMNS].sum(axis=1), 1.0)
    assert dict(zip(qc["outcome"], qc["count"])) == {"in": 6, "kept": 5, "rejected:outside_grid": 1}


def test_city_without_pois_gives_an_empty_table_with_the_columns():
    spec = GridSpec(0.0, 0.0, 3, 2, 100.0)
    for pois in (None, read_pois([])):
        cells, qc = poi_cell_table(spec, pois, EQC)
        assert cells.empty and list(cells.columns) == CELL_COLUMNS
        assert cells["cell_id"].dtype == np.int64 and cells["p_food"].dtype == np.float64
        assert dict(zip(qc["outcome"], qc["count"])) == {"in": 0, "kept": 0}
    cells, _ = poi_cells_from_files(spec, [], EQC)
    assert cells.empty and list(cells.columns) == CELL_COLUMNS
    with pytest.raises(ValueError, match="category"):
        poi_cell_table(spec, pd.DataFrame({"lon": [0.0], "lat": [0.0]}), EQC)


def test_trip_cell_sequences_collapse_visits_and_count_outside_fixes():
    spec = GridSpec(0.0, 0.0, 3, 2, 10.0)
    a = [(5, 5), (6, 6), (15, 5), (-5, 5), (16, 5), (5, 5)]  # cells 0 0 1 out 1 0
    b = [(-5, -5), (50, 50)]  # nothing in the grid
    trips = pd.DataFrame({
        "trip_id": ["a", "b", "c", "d"],
        "lon": [_deg([p[0] for p in a]), _deg([p[0] for p in b]), _deg([1.0, 2.0]), _deg([])],
        "lat": [_deg([p[1] for p in a]), _deg([p[1] for p in b]), _deg([1.0]), _deg([])],
    })
    seq, qc = trip_cell_sequences(spec, trips, EQC)
    assert list(seq.columns) == TRIP_CELL_COLUMNS and seq["trip_id"].tolist() == ["a"]
    r = seq.iloc[0]
    assert list(r["cells"]) == [0, 1, 0] and r["n_cells"] == 3  # the outside fix does not split visit 1
    assert list(r["point_cells"]) == [0, 0, 1, -1, 1, 0]
    assert list(r["point_visit"]) == [0, 0, 1, -1, 1, 2]
    assert (r["n_points"], r["n_outside"]) == (6, 1)
    counts = dict(zip(qc["outcome"], qc["count"]))
    assert counts == {"in": 4, "kept": 1, "rejected:no_fix_in_grid": 1, "rejected:no_points": 1,
                      "rejected:point_lists_differ_in_length": 1, "fixes_in": 8, "fixes_outside_grid": 3}


def test_porto_pois_are_all_accounted_for_on_500m_cells(data_root):
    paths = [data_root / p for p in POI_FILES]
    n_rows = sum(len(pd.read_csv(p)) for p in paths)  # data rows of the two CSVs
    pois = read_pois(paths)
    assert len(pois) == n_rows
    spec = grid_spec(PORTO_BBOX, PORTO_CRS, 500)
    cells, qc = poi_cells_from_files(spec, paths, PORTO_CRS)
    counts = dict(zip(qc["outcome"], qc["count"]))
    outside = counts.get("rejected:outside_grid", 0)
    assert counts["in"] == n_rows and int(cells["n_pois"].sum()) + outside == n_rows
    assert int(cells["n_pois"].sum()) == counts["kept"] > 0
    assert (cells[POI_COUNT_COLUMNS].sum(axis=1) == cells["n_pois"]).all()
    assert np.allclose(cells[POI_SHARE_COLUMNS].sum(axis=1), 1.0, atol=1e-12)
    assert cells["cell_id"].is_unique and cells["cell_id"].between(0, spec.n_cells - 1).all()
    assert set(POI_CATEGORIES) == {c[2:] for c in POI_COUNT_COLUMNS}


def test_porto_trips_every_fix_in_a_cell_or_counted_outside(data_root):
    block, _ = next(read_porto_trips(data_root / "porto/train.csv.xz", max_trips=40))
    trips, _ = filter_trips(block, PORTO_BBOX, 5, 400, 50)
    spec = grid_spec(PORTO_BBOX, PORTO_CRS, 500)
    seq, qc = trip_cell_sequences(spec, trips, PORTO_CRS)
    counts = dict(zip(qc["outcome"], qc["count"]))
    assert counts["in"] == len(trips) == counts["kept"] == len(seq)  # ingest kept only trips inside the bbox
    assert counts["fixes_in"] == sum(len(v) for v in trips["lon"]) == int(seq["n_points"].sum())
    assert counts["fixes_outside_grid"] == 0
    for cells, pc, visit in zip(seq["cells"], seq["point_cells"], seq["point_visit"]):
        assert (np.diff(cells) != 0).all()
        assert list(np.asarray(cells)[np.asarray(visit)]) == list(pc)
