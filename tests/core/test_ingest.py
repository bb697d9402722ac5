"""Ingest: the Porto and Cabspotting readers on real slices, and counted rejections."""
from __future__ import annotations

import lzma

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from trajzoo.ingest import InputFileError, ingest_city, ingest_city_to_parquet
from trajzoo.ingest.cabspotting import occupied_runs, read_cabspotting_trips
from trajzoo.ingest.filters import filter_trips, haversine_m

PORTO = {"trajectories": {"format": "porto_csv", "path": "porto/train.csv.xz"},
         "bbox": [-8.70, 41.13, -8.54, 41.195],
         "filters": {"min_points": 5, "max_points": 400, "max_speed_mps": 50}, "caps": {"max_trips": 300}}


def real_porto_lines(data_root, n):
    with lzma.open(data_root / "porto/train.csv.xz", "rt") as f:
        return [next(f) for _ in range(n + 1)]


def test_porto_real_slice_accounts_for_every_trip(data_root):
    trips, rej, qc = ingest_city(PORTO, data_root)
    counts = dict(zip(qc["outcome"], qc["count"]))
    assert counts["in"] == 300
    assert counts["kept"] == len(trips) and counts["kept"] + len(rej) == 300
    assert len(trips) > 200
    first = trips.iloc[0]
    assert first["trip_id"] == "1372636853620000380" and first["call_type"] == "C"
    assert np.all(np.diff(first["timestamps"]) == 15) and first["timestamps"][0] == 1372636853
    assert len(first["lon"]) == len(first["lat"]) == first["n_points"] == 25
    assert first["lon"][0] == pytest.approx(-8.610291) and first["lat"][0] == pytest.approx(41.140746)


def test_porto_bad_polylines_are_counted_with_reasons(data_root, tmp_path):
    lines = real_porto_lines(data_root, 4)
    header, rows = lines[0], lines[1:]
    broken = rows[0].rsplit(',"[', 1)[0] + ',"not json"\n'
    empty = rows[1].rsplit(',"[', 1)[0] + ',"[]"\n'
    path = tmp_path / "train.csv"
    path.write_text(header + broken + empty + rows[2] + rows[2])
    trips, rej, qc = ingest_city({**PORTO, "trajectories": {"format": "porto_csv", "path": "train.csv"}}, tmp_path)
    assert dict(zip(rej["row"], rej["reason"])) == {1: "polyline_not_json", 2: "empty_polyline", 4: "duplicate_trip"}
    assert len(trips) == 1


def test_porto_missing_column_names_the_file(data_root, tmp_path):
    lines = real_porto_lines(data_root, 2)
    path = tmp_path / "train.csv"
    path.write_text("".join(l.replace(",", ";") for l in lines))
    with pytest.raises(InputFileError, match=r"train\.csv.*missing column"):
        ingest_city({**PORTO, "trajectories": {"format": "porto_csv", "path": "train.csv"}}, tmp_path)


def test_occupied_runs_split_on_occupancy_and_gaps():
    t = np.array([0, 60, 120, 180, 240, 300, 360, 420, 900, 960, 1020, 1080, 1140, 1200])
    occ = np.array([1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1])
    fixes = pd.DataFrame({"lat": 37.78 + t * 1e-6, "lon": -122.4 + t * 1e-6, "occupancy": occ, "time": t})
    trips, rej, counts = occupied_runs(fixes.iloc[::-1], "cab", max_gap_seconds=300, min_fixes=5)
    # run 1: 0..300 (6 fixes); 420 alone (gap 480 s to 900) -> too few; run 3: 900..1200 (6 fixes)
    assert [t["trip_id"] for t in trips] == ["cab_0", "cab_900"]
    assert [len(t["timestamps"]) for t in trips] == [6, 6]
    assert [(r["trip_id"], r["reason"]) for r in rej] == [("cab_420", "too_few_fixes")]
    assert np.all(np.diff(trips[0]["timestamps"]) > 0)


def test_cabspotting_real_archive_slice(data_root):
    trips, rej, counts = read_cabspotting_trips(data_root / "sanfrancisco/cabspottingdata_north_14d.tar.xz",
                                                max_trips=500)
    assert len(trips) + len(rej) == 500
    assert trips["taxi_id"].iloc[0] == "abboip"
    assert all(np.all(np.diff(t) > 0) for t in trips["timestamps"])


def test_filters_reject_teleports_and_outside_bbox():
    base = {"trip_id": "a", "row": 1, "timestamps": np.arange(6) * 15,
            "lon": -8.61 + np.arange(6) * 1e-4, "lat": np.full(6, 41.15)}
    jump = {**base, "trip_id": "b", "lon": base["lon"].copy()}
    jump["lon"][3] += 0.05  # ~4 km in 15 s
    out = {**base, "trip_id": "c", "lat": np.full(6, 40.0)}
    kept, rej = filter_trips(pd.DataFrame([base, jump, out]), bbox=[-8.7, 41.13, -8.54, 41.195],
                             min_points=5, max_points=400, max_speed_mps=50)
    assert list(kept["trip_id"]) == ["a"]
    assert dict(zip(rej["trip_id"], rej["reason"])) == {"b": "impossible_speed", "c": "outside_bbox"}


def test_haversine_one_degree_latitude():
    # pyproj.Geod on the sphere of radius 6,371,008.8 m: one degree of arc is R * pi / 180
    assert haversine_m(0.0, 0.0, 0.0, 1.0) == pytest.approx(6_371_008.8 * np.pi / 180, rel=1e-12)


def test_cabspotting_folder_layout_reads_like_the_tarball(data_root, tmp_path):
    import tarfile

    tar_path = data_root / "sanfrancisco/cabspottingdata_north_14d.tar.xz"
    with tarfile.open(tar_path, "r|*") as tar:
        for member in tar:
            if member.name.endswith(("new_abboip.txt", "new_abcoij.txt")):
                tar.extract(member, tmp_path, filter="data")
    folder_trips, folder_rej, _ = read_cabspotting_trips(tmp_path / "cabspottingdata")
    tar_trips, tar_rej, _ = read_cabspotting_trips(tar_path, max_trips=len(folder_trips) + len(folder_rej))
    assert folder_trips["trip_id"].tolist() == tar_trips["trip_id"].tolist()
    assert len(folder_trips) > 10


# ---------------------------------------------------------------------------------------------
# Streaming: the table does not depend on the block size (bounded memory for the full files)


def assert_same_ingest(a, b):
    (ta, ra, qa), (tb, rb, qb) = a, b
    arrays = ["timestamps", "lon", "lat"]
    pd.testing.assert_frame_equal(ta.drop(columns=arrays), tb.drop(columns=arrays))
    for col in arrays:
        assert all(np.array_equal(x, y) for x, y in zip(ta[col], tb[col])), col
    pd.testing.assert_frame_equal(ra, rb)
    pd.testing.assert_frame_equal(qa, qb)


def test_porto_small_blocks_give_the_same_table(data_root):
    """All 2,499 real rows: 64 KiB CSV blocks (about 20 blocks) against the default 16 MiB (one block)."""
    whole = {**PORTO, "caps": {"max_trips": None}}
    default = ingest_city(whole, data_root)
    assert len(default[1]) > 100  # rejections of both kinds (reader and filters) take part
    assert_same_ingest(ingest_city(whole, data_root, porto_block_bytes=1 << 16), default)


def test_cabspotting_small_blocks_give_the_same_table(data_root):
    sf = {"trajectories": {"format": "cabspotting", "path": "sanfrancisco/cabspottingdata_north_14d.tar.xz"},
          "bbox": [-122.49, 37.775, -122.39, 37.815],
          "filters": {"min_points": 5, "max_points": 400, "max_speed_mps": 50}, "caps": {"max_trips": 4000}}
    default = ingest_city(sf, data_root)
    assert len(default[1]) > 0
    assert_same_ingest(ingest_city(sf, data_root, cab_block_points=3000), default)  # about 10 blocks


def test_streamed_parquet_equals_the_in_memory_table(data_root, tmp_path):
    whole = {**PORTO, "caps": {"max_trips": 1200}}
    trips, rej, qc = ingest_city(whole, data_root)
    qc_streamed = ingest_city_to_parquet(whole, data_root, tmp_path / "trips.parquet", tmp_path / "rej.parquet",
                                         porto_block_bytes=1 << 16)
    assert pq.ParquetFile(tmp_path / "trips.parquet").metadata.num_row_groups > 3  # really written in blocks
    trips.to_parquet(tmp_path / "whole.parquet", index=False)
    assert pq.read_schema(tmp_path / "trips.parquet").remove_metadata().equals(
        pq.read_schema(tmp_path / "whole.parquet").remove_metadata())
    assert_same_ingest((pd.read_parquet(tmp_path / "trips.parquet"), pd.read_parquet(tmp_path / "rej.parquet"),
                        qc_streamed), (trips, rej, qc))


def test_cabspotting_archive_order_does_not_matter(data_root, tmp_path):
    """An archive listing cabs in reverse order gives the folder's (cab-id ordered) table."""
    import tarfile

    src = data_root / "sanfrancisco/cabspottingdata_north_14d.tar.xz"
    with tarfile.open(src, "r|*") as tar:
        for member in tar:
            if member.name.endswith(("new_adnerst.txt", "new_ojfieza.txt", "new_ubgihoot.txt")):
                tar.extract(member, tmp_path, filter="data")
    names = sorted(p.name for p in (tmp_path / "cabspottingdata").iterdir())
    assert len(names) == 3
    with tarfile.open(tmp_path / "reversed.tar.gz", "w:gz") as tar:
        for name in reversed(names):
            tar.add(tmp_path / "cabspottingdata" / name, arcname=f"cabspottingdata/{name}")
    folder = read_cabspotting_trips(tmp_path / "cabspottingdata")
    archive = read_cabspotting_trips(tmp_path / "reversed.tar.gz", block_points=500)
    assert folder[0]["trip_id"].tolist() == archive[0]["trip_id"].tolist()
    assert folder[0]["taxi_id"].is_monotonic_increasing and folder[2] == archive[2]


def test_cabspotting_runs_match_the_data_readme(data_root):
    """The whole 14-day archive (every fix, free and occupied): occupied runs split at every
    occupancy change and at gaps over 300 s. The data README counts 6,679,117 fixes, 241,931 runs
    with >= 5 fixes, 102,584 of them wholly inside the OSM extract plus about 250 m."""
    trips, rej, fixes = read_cabspotting_trips(data_root / "sanfrancisco/cabspottingdata_north_14d.tar.xz")
    assert fixes["fixes_in"] == 6_679_117
    assert len(trips) == 241_931
    assert set(rej["reason"]) == {"too_few_fixes"}
    # the extract's <bounds> (data README) grown by 250 m
    dlat = 250 / 111_195
    dlon = dlat / np.cos(np.radians((37.7805 + 37.811) / 2))
    lo, la = trips["lon"], trips["lat"]
    inside = sum(bool(x.min() >= -122.485 - dlon and x.max() <= -122.3942 + dlon and
                      y.min() >= 37.7805 - dlat and y.max() <= 37.811 + dlat) for x, y in zip(lo, la))
    assert abs(inside - 102_584) < 0.001 * 102_584, inside
