"""Data sources as people have them: Porto train.csv.zip as distributed, OSM .osm.pbf extracts,
and the generic ``fixes`` reader (any CSV/Parquet of GPS fixes), each on slices of the real files."""
from __future__ import annotations

import bz2
import itertools
import lzma
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trajzoo.ingest import ingest_city
from trajzoo.ingest.errors import InputFileError
from trajzoo.ingest.generic import read_fixes_trips
from trajzoo.ingest.porto import read_porto_trips

N_TRIPS = 300


@pytest.fixture(scope="module")
def porto_slice(data_root, tmp_path_factory) -> Path:
    """The first N_TRIPS rows of the real Porto train.csv, as plain CSV."""
    out = tmp_path_factory.mktemp("porto") / "train.csv"
    with lzma.open(data_root / "porto" / "train.csv.xz", "rt", newline="") as f:
        out.write_text("".join(itertools.islice(f, N_TRIPS + 1)))
    return out


def porto_city(path: str, data_root: Path) -> dict:
    return {"trajectories": {"format": "porto_csv", "path": path}, "bbox": [-8.70, 41.13, -8.54, 41.195],
            "filters": {"min_points": 5, "max_points": 400, "max_speed_mps": 50}, "caps": {"max_trips": None}}


# --- Porto train.csv.zip ---------------------------------------------------------------------------

def test_porto_zip_as_distributed_reads_like_the_csv(porto_slice, tmp_path):
    zipped = tmp_path / "train.csv.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(porto_slice, "train.csv")
    plain = ingest_city(porto_city(porto_slice.name, porto_slice.parent), porto_slice.parent)
    from_zip = ingest_city(porto_city(zipped.name, tmp_path), tmp_path)
    pd.testing.assert_frame_equal(plain[0], from_zip[0])
    pd.testing.assert_frame_equal(plain[1], from_zip[1])
    pd.testing.assert_frame_equal(plain[2], from_zip[2])
    assert len(plain[0]) + len(plain[1]) == N_TRIPS


def test_porto_zip_with_two_members_is_an_error(porto_slice, tmp_path):
    zipped = tmp_path / "train.csv.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(porto_slice, "train.csv")
        zf.write(porto_slice, "copy.csv")
    with pytest.raises(InputFileError, match=r"train\.csv\.zip: a zip archive holding 2 \.csv member\(s\).*expected exactly one"):
        list(read_porto_trips(zipped))


def test_porto_zip_truncated_is_an_error(porto_slice, tmp_path):
    zipped = tmp_path / "train.csv.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(porto_slice, "train.csv")
    zipped.write_bytes(zipped.read_bytes()[: zipped.stat().st_size // 2])
    with pytest.raises(InputFileError, match=r"train\.csv\.zip"):
        list(read_porto_trips(zipped))


# --- generic fixes reader -------------------------------------------------------------------------

def porto_as_fixes(porto_slice: Path) -> pd.DataFrame:
    """The real Porto slice exploded to one row per GPS fix, in shuffled order, with the column
    names of some other data set (and timestamps in milliseconds)."""
    trips = pd.concat([t for t, _ in read_porto_trips(porto_slice)], ignore_index=True)
    rows = [{"trip": tid, "vehicle": taxi, "mode": ct, "time_ms": int(t) * 1000, "lng": x, "latitude": y}
            for tid, taxi, ct, ts, lon, lat in zip(trips.trip_id, trips.taxi_id, trips.call_type, trips.timestamps,
                                                   trips.lon, trips.lat)
            for t, x, y in zip(ts, lon, lat)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)


COLUMNS = {"trip_id": "trip", "taxi_id": "vehicle", "timestamp": "time_ms", "lon": "lng", "lat": "latitude",
           "labels": {"call_type": "mode"}}


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_fixes_reader_gives_the_porto_readers_trips(porto_slice, tmp_path, suffix):
    fixes = porto_as_fixes(porto_slice)
    path = tmp_path / f"fixes.{suffix}"
    fixes.to_parquet(path) if suffix == "parquet" else fixes.to_csv(path, index=False)
    city = {"trajectories": {"format": "fixes", "path": path.name, "columns": COLUMNS, "timestamp_unit": "ms"},
            "bbox": [-8.70, 41.13, -8.54, 41.195],
            "filters": {"min_points": 5, "max_points": 400, "max_speed_mps": 50}, "caps": {"max_trips": None}}
    generic, gen_rej, _ = ingest_city(city, tmp_path)
    porto, porto_rej, _ = ingest_city(porto_city(porto_slice.name, porto_slice.parent), porto_slice.parent)
    # Porto's empty-POLYLINE trips have no fix, so they are not in the fixes table at all
    empty = set(porto_rej.loc[porto_rej.reason == "empty_polyline", "trip_id"])
    key = ["trip_id", "taxi_id", "call_type", "start_time", "n_points"]
    # trips come in order of their first fix in the (shuffled) file: compare by trip id
    g = generic.sort_values("trip_id").reset_index(drop=True)
    p = porto.sort_values("trip_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(g[key].astype(str), p[key].astype(str))
    for col in ("timestamps", "lon", "lat"):
        for a, b in zip(g[col], p[col]):
            np.testing.assert_array_equal(a, b)
    assert sorted(gen_rej.reason) == sorted(porto_rej.loc[~porto_rej.trip_id.isin(empty), "reason"])
    assert len(generic) + len(gen_rej) + len(empty) == N_TRIPS


def test_fixes_reader_iso_time_max_trips_and_bad_timestamps(porto_slice, tmp_path):
    fixes = porto_as_fixes(porto_slice).head(4000)
    fixes["time"] = pd.to_datetime(fixes["time_ms"], unit="ms").dt.strftime("%Y-%m-%d %H:%M:%S")
    first = fixes["trip"].iloc[0]
    fixes.loc[fixes.index[0], "time"] = "not a time"
    path = tmp_path / "fixes.csv"
    fixes.drop(columns=["time_ms"]).to_csv(path, index=False)
    cols = {**COLUMNS, "timestamp": "time", "labels": {}}
    blocks = list(read_fixes_trips(path, cols, "iso"))
    trips = pd.concat([b[0] for b in blocks], ignore_index=True)
    rej = pd.concat([b[1] for b in blocks], ignore_index=True)
    assert rej.to_dict("records") == [{"trip_id": str(first), "row": 1, "reason": "timestamp_not_parsed"}]
    assert trips["call_type"].isna().all()
    one = trips.iloc[0]
    sub = fixes[fixes.trip.astype(str) == one.trip_id].sort_values("time_ms")
    np.testing.assert_array_equal(one.timestamps, sub.time_ms.to_numpy() // 1000)
    capped = pd.concat([b[0] for b in read_fixes_trips(path, cols, "iso", max_trips=5)])
    assert len(capped) == 4 and capped["row"].tolist() == [2, 3, 4, 5]


def test_fixes_reader_names_a_missing_column(porto_slice, tmp_path):
    path = tmp_path / "fixes.parquet"
    porto_as_fixes(porto_slice).head(100).to_parquet(path)
    with pytest.raises(InputFileError, match=r"fixes\.parquet.*missing column\(s\) \['lon'\].*lon='lon'"):
        list(read_fixes_trips(path, {**COLUMNS, "lon": "lon"}))
    other = tmp_path / "fixes.xlsx"
    other.write_text("x")
    with pytest.raises(InputFileError, match=r"fixes\.xlsx.*reads \.parquet, \.csv"):
        list(read_fixes_trips(other, COLUMNS))


# --- OSM .osm.pbf --------------------------------------------------------------------------------

def osm_slice(data_root: Path, out: Path, box=(-8.615, 41.145, -8.600, 41.155)) -> Path:
    """A small, complete-ways extract of the real Porto OSM file, written with pyosmium (the
    format follows ``out``'s suffix: .osm.pbf or .osm), with its box in the header."""
    import osmium

    xml = out.parent / "porto_center.osm"
    if not xml.exists():
        with bz2.open(data_root / "porto" / "osm" / "porto_center.osm.bz2") as f:
            xml.write_bytes(f.read())
    w, s, e, n = box
    inside = set()
    for obj in osmium.FileProcessor(str(xml), osmium.osm.NODE):
        if w <= obj.location.lon <= e and s <= obj.location.lat <= n:
            inside.add(obj.id)
    ways, refs = set(), set()
    for obj in osmium.FileProcessor(str(xml), osmium.osm.WAY):
        nds = [nd.ref for nd in obj.nodes]
        if any(r in inside for r in nds):
            ways.add(obj.id)
            refs.update(nds)
    header = osmium.io.Header()
    header.add_box(osmium.osm.Box(w, s, e, n))
    with osmium.SimpleWriter(str(out), header=header, overwrite=True) as writer:
        for obj in osmium.FileProcessor(str(xml), osmium.osm.NODE | osmium.osm.WAY):
            if (obj.is_node() and obj.id in refs) or (obj.is_way() and obj.id in ways):
                writer.add(obj)
    return out


def test_pbf_extract_builds_the_same_network_as_its_xml(data_root, tmp_path):
    from trajzoo.ingest.coverage import osm_bounds
    from trajzoo.roads.network import build_road_network

    pbf = osm_slice(data_root, tmp_path / "slice.osm.pbf")
    xml = osm_slice(data_root, tmp_path / "slice.osm")
    assert pbf.read_bytes()[:64] != xml.read_bytes()[:64]  # really two formats
    seg_pbf, adj_pbf = build_road_network({"file": pbf.name}, tmp_path, "EPSG:32629")
    seg_xml, adj_xml = build_road_network({"file": xml.name}, tmp_path, "EPSG:32629")
    assert len(seg_pbf) > 100
    pd.testing.assert_frame_equal(seg_pbf, seg_xml)
    pd.testing.assert_frame_equal(adj_pbf, adj_xml)
    assert osm_bounds(pbf) == pytest.approx([-8.615, 41.145, -8.600, 41.155])


def test_corrupt_pbf_names_the_file(tmp_path):
    from trajzoo.roads.network import RoadNetworkError, build_road_network

    bad = tmp_path / "broken.osm.pbf"
    bad.write_bytes(b"\x00\x00\x00\x0dnot a pbf at all" * 4)
    with pytest.raises(RoadNetworkError, match=r"broken\.osm\.pbf: cannot read as an OSM PBF extract"):
        build_road_network({"file": bad.name}, tmp_path, "EPSG:32629")
