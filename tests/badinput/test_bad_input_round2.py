"""Bad input, second round (issue 10): one test (or parametrized group) per class of problem.

Every input is a small slice of the real files in the data mirror (Porto train.csv, the
Cabspotting tarball, DeepTTE Chengdu, the Porto OSM corpus slice), written to tmp and damaged in
one way. Each test asserts the exact message or the exact counts.
"""
from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from trajzoo.config import check_city_config
from trajzoo.ingest import InputFileError, ingest_city, plausible_time_range
from trajzoo.ingest.cabspotting import iter_cab_files, parse_cab_file
from trajzoo.ingest.filetype import FileTypeError, sniff
from trajzoo.ingest.porto import LineCounter
from trajzoo.qc import AccountingError
from trajzoo.roads.network import RoadNetworkError, build_road_network

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
FILTERS = {"min_points": 5, "max_points": 400, "max_speed_mps": 50}
PORTO = {"bbox": [-8.70, 41.13, -8.54, 41.195], "filters": FILTERS, "caps": {"max_trips": None}}
SF = {"bbox": [-122.49, 37.775, -122.39, 37.815], "filters": FILTERS, "caps": {"max_trips": None}}
CHENGDU = {"bbox": [103.80, 30.40, 104.31, 30.95], "filters": FILTERS, "caps": {"max_trips": None}}
CAB_SOURCE = {"format": "cabspotting", "occupied_runs": {"max_gap_seconds": 300, "min_fixes": 5}}
#: The first 12 data rows of Porto train.csv: 8 kept, 4 impossible_speed (rows 2, 5, 6, 9).
PORTO_BASE = {"in": 12, "kept": 8, "rejected:impossible_speed": 4}


def counts(qc: pd.DataFrame) -> dict:
    return dict(zip(qc["outcome"], qc["count"].astype(int)))


@pytest.fixture(scope="module")
def porto_lines(data_root) -> list[bytes]:
    """Header + the first 12 data rows of Porto train.csv (bytes, each ending in \\n)."""
    out = []
    with lzma.open(data_root / "porto/train.csv.xz", "rb") as f:
        for line in f:
            out.append(line)
            if len(out) == 13:
                return out


@pytest.fixture(scope="module")
def deeptte_lines(data_root) -> list[bytes]:
    """The first 10 records of DeepTTE Chengdu (JSON lines)."""
    out = []
    with lzma.open(data_root / "chengdu/deeptte_test.jsonl.xz", "rb") as f:
        for line in f:
            out.append(line)
            if len(out) == 10:
                return out


@pytest.fixture(scope="module")
def cab_slice(data_root) -> tuple[str, bytes]:
    """The first 400 fixes of the first cab file of the Cabspotting tarball."""
    with tarfile.open(data_root / "sanfrancisco/cabspottingdata_north_14d.tar.xz", "r|xz") as tar:
        for m in tar:
            if m.isfile() and m.name.endswith(".txt"):
                raw = tar.extractfile(m).read()
                return Path(m.name).name, b"".join(raw.splitlines(keepends=True)[:400])


def porto_ingest(path: Path, **filters):
    city = {**PORTO, "filters": {**FILTERS, **filters}, "trajectories": {"format": "porto_csv", "path": path.name}}
    return ingest_city(city, path.parent)


def cab_ingest(path: Path):
    return ingest_city({**SF, "trajectories": {**CAB_SOURCE, "path": path.name}}, path.parent)


def deeptte_ingest(path: Path):
    return ingest_city({**CHENGDU, "trajectories": {"format": "deeptte_jsonl", "path": path.name}}, path.parent)


def set_field(line: bytes, index: int, value: str) -> bytes:
    """A Porto CSV line with field ``index`` (0-based) replaced by ``value`` (quoted)."""
    import csv

    fields = next(csv.reader([line.decode()]))
    fields[index] = value
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(fields)
    return buf.getvalue().encode()


def two_streams(data: bytes, compress, damage: bool) -> bytes:
    """``data`` compressed as two streams (as pbzip2 / parallel xz write), the second's first
    bytes (its header) damaged when ``damage``."""
    half = data.index(b"\n", len(data) // 2) + 1
    first, second = compress(data[:half]), bytearray(compress(data[half:]))
    if damage:
        second[0] ^= 0xFF
        second[1] ^= 0xFF
    return first + bytes(second)


# ---------------------------------------------------------------------------------------------
# Accounting that can fail: raw records counted apart from the parse


def test_accounting_counts_raw_lines_and_fails_on_a_lost_row(porto_lines, tmp_path, monkeypatch):
    path = tmp_path / "train.csv"
    path.write_bytes(b"".join(porto_lines[:7]) + b"\n\r\n" + b"".join(porto_lines[7:]))  # 2 blank lines
    trips, rej, qc = porto_ingest(path)
    assert counts(qc) == PORTO_BASE  # "in" is the file's own count of data lines, blank lines not rows

    counter = LineCounter(io.BytesIO(b"h\nrow1\n\n\r\nrow2\r\nrow3"))
    while counter.read(3):
        pass
    assert counter.total() == 4  # header + 3 rows; an empty line and a lone \r are not counted

    # a parser that loses a row is caught by the independent line count
    import types

    import pyarrow as pa

    import trajzoo.ingest.porto as porto

    table = types.SimpleNamespace(from_batches=lambda b: pa.Table.from_batches(b).slice(1))
    monkeypatch.setattr(porto, "pa", types.SimpleNamespace(**{**vars(pa), "Table": table}))
    with pytest.raises(AccountingError) as err:
        porto_ingest(path)
    assert str(err.value) == (f"{path}: 12 non-blank data line(s) after the header but the CSV reader gave 11 "
                              "row(s); rows were lost or merged (a quoted field spanning lines?)")


def test_accounting_of_cab_fixes_and_of_a_reader_that_loses_records(cab_slice, tmp_path, monkeypatch):
    name, raw = cab_slice
    import pyarrow.csv as pacsv

    real = pacsv.read_csv
    monkeypatch.setattr(pacsv, "read_csv", lambda *a, **k: real(*a, **k).slice(2))
    with pytest.raises(AccountingError) as err:
        parse_cab_file(raw, name)
    assert str(err.value) == f"{name}: 400 non-blank line(s) but the reader parsed 398 fix(es)"
    monkeypatch.undo()

    # a reader that reports more raw records than it gave: ingest refuses the QC
    from trajzoo.ingest import IngestTally

    tally = IngestTally("porto_csv", n_kept=3, n_parsed=3, reader_counts={"records_read": 5})
    with pytest.raises(AccountingError, match=r"^stage ingest: the reader read 5 record\(s\) but gave 3 "):
        tally.qc()


def test_stage_qc_is_checked_against_the_files_rows(porto_lines, tmp_path):
    """The rule scripts (ingest, split, points, grid) compare each QC table with the row counts of
    the Parquet files read and written (their footers), outside the stage's own computation."""
    from trajzoo.ingest import ingest_city_to_parquet
    from trajzoo.qc import check_stage_io, parquet_rows
    from trajzoo.splits import split_trips

    (tmp_path / "train.csv").write_bytes(b"".join(porto_lines))
    city = {**PORTO, "trajectories": {"format": "porto_csv", "path": "train.csv"}}
    qc = ingest_city_to_parquet(city, tmp_path, tmp_path / "trips.parquet", tmp_path / "rej.parquet")
    check_stage_io(qc, "ingest", n_written=parquet_rows(tmp_path / "trips.parquet"))
    assert parquet_rows(tmp_path / "trips.parquet") == 8
    splits, sqc = split_trips(pd.read_parquet(tmp_path / "trips.parquet")["trip_id"], {"train": 0.5, "val": 0.25,
                                                                                        "test": 0.25}, 0)
    check_stage_io(sqc, "split", n_read=8, n_written=8)
    with pytest.raises(AccountingError) as err:
        check_stage_io(sqc, "split", n_read=9)  # e.g. a trip table that lost a row on the way
    assert str(err.value) == "stage split: QC says 8 in, the input holds 9"
    with pytest.raises(AccountingError) as err:
        check_stage_io(qc, "ingest", n_written=7)
    assert str(err.value) == "stage ingest: QC says 8 kept, 7 were written"


# ---------------------------------------------------------------------------------------------
# Compressed files: every stream read, a damaged later stream an error naming the file


@pytest.mark.parametrize("suffix, compress", [(".xz", lzma.compress), (".bz2", bz2.compress),
                                              (".gz", gzip.compress)])
def test_multistream_file_is_read_to_the_end_and_a_damaged_stream_fails(porto_lines, tmp_path, suffix, compress):
    data = b"".join(porto_lines)
    good = tmp_path / f"good.csv{suffix}"
    good.write_bytes(two_streams(data, compress, damage=False))
    assert counts(porto_ingest(good)[2]) == PORTO_BASE  # both streams read: all 12 rows

    bad = tmp_path / f"bad.csv{suffix}"
    bad.write_bytes(two_streams(data, compress, damage=True))
    if suffix != ".gz":  # Python's own reader stops at the damaged stream without an error
        opener = lzma.open if suffix == ".xz" else bz2.open
        assert len(opener(bad).read()) < len(data)
    with pytest.raises(InputFileError) as err:
        porto_ingest(bad)
    assert err.value.path == str(bad)
    assert err.value.problem.startswith(f"truncated or corrupt {suffix} file: decompression failed after ")
    assert "stream 2 (starting at compressed byte" in err.value.problem


def test_multistream_tarball_and_jsonl_with_a_damaged_stream_fail(cab_slice, deeptte_lines, tmp_path):
    name, raw = cab_slice
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for cab in ("new_aaa.txt", "new_bbb.txt"):
            info = tarfile.TarInfo(f"cabspottingdata/{cab}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    good = tmp_path / "good.tar.xz"
    good.write_bytes(two_streams(buf.getvalue(), lzma.compress, damage=False))
    assert counts(cab_ingest(good)[2])["fixes_in"] == 800
    bad = tmp_path / "bad.tar.xz"
    bad.write_bytes(two_streams(buf.getvalue(), lzma.compress, damage=True))
    with pytest.raises(InputFileError) as err:
        cab_ingest(bad)
    assert str(err.value).startswith(f"{bad}: truncated or corrupt archive after 1 complete cab file(s), the last "
                                     "cabspottingdata/new_aaa.txt: stream 2 (starting at compressed byte")

    jl = tmp_path / "bad.jsonl.bz2"
    jl.write_bytes(two_streams(b"".join(deeptte_lines), bz2.compress, damage=True))
    with pytest.raises(InputFileError) as err:
        deeptte_ingest(jl)
    assert err.value.path == str(jl) and "stream 2 (starting at compressed byte" in err.value.problem


# ---------------------------------------------------------------------------------------------
# Cabspotting folder/archive members: every entry read or counted; unreadable ones named


def test_every_cab_folder_member_is_read_or_counted(cab_slice, tmp_path):
    name, raw = cab_slice
    root = tmp_path / "cabspottingdata"
    (root / "sub").mkdir(parents=True)
    (root / "new_a.txt").write_bytes(raw)
    (root / "new_b.TXT").write_bytes(raw)
    (root / "new_c.txt.gz").write_bytes(gzip.compress(raw))
    (root / "sub" / "new_d.txt").write_bytes(raw)
    (root / "README").write_text("cabspotting\n")
    (root / "_cabs.txt").write_text("a list\n")
    outside = tmp_path / "elsewhere" / "new_e.txt"
    outside.parent.mkdir()
    outside.write_bytes(raw)
    (root / "new_e.txt").symlink_to(outside)  # a link out of the folder: read
    (root / "new_f.txt").symlink_to(root / "new_a.txt")  # a link to a member: counted, not read twice
    members = {}
    cabs = [cab for cab, _, _ in iter_cab_files(root, members)]
    assert cabs == ["a", "b", "c", "d", "e"]
    assert members == {"cab_files": 5, "folders": 1, "skipped:not_a_cab_file": 2, "skipped:link_into_folder": 1}
    qc = counts(cab_ingest(root)[2])
    assert qc["fixes_in"] == 5 * 400
    assert {k: v for k, v in qc.items() if k.startswith("members")} == {
        "members_read": 5, "members_skipped:link_into_folder": 1, "members_skipped:not_a_cab_file": 2}

    buf = tmp_path / "cabs.tar.gz"
    with tarfile.open(buf, "w:gz") as tar:
        tar.add(root, arcname="cabspottingdata", recursive=True)
    members = {}  # in an archive, both links are entries of their own: counted, not followed
    assert sorted(c for c, _, _ in iter_cab_files(buf, members)) == ["a", "b", "c", "d"]
    assert members == {"cab_files": 4, "folders": 2, "skipped:not_a_cab_file": 2, "skipped:link": 2}


@pytest.mark.parametrize("make, problem", [
    (lambda root: (root / "new_x.txt").symlink_to(root / "new_x.txt"),
     "symbolic link loop (the link points back at itself)"),
    (lambda root: (root / "new_x.txt").symlink_to(root / "gone.txt"),
     "dangling symbolic link to {root}/gone.txt (its target does not exist)"),
    (lambda root: (root / "new_x.txt").mkdir(), "is a folder named like a cab file (expected a file new_<cab>.txt)"),
])
def test_unreadable_cab_member_is_named(cab_slice, tmp_path, make, problem):
    root = tmp_path / "cabspottingdata"
    root.mkdir()
    (root / "new_a.txt").write_bytes(cab_slice[1])
    make(root)
    with pytest.raises(InputFileError) as err:
        cab_ingest(root)
    assert str(err.value) == f"{root / 'new_x.txt'}: {problem.format(root=root)}"


def test_deeptte_folder_entries_are_read_or_named(deeptte_lines, tmp_path):
    folder = tmp_path / "chengdu"
    folder.mkdir()
    (folder / "train_00").write_bytes(b"".join(deeptte_lines[:6]))
    (folder / "train_01.xz").write_bytes(lzma.compress(b"".join(deeptte_lines[6:])))
    assert counts(deeptte_ingest(folder)[2])["in"] == 10
    (folder / "train_02").symlink_to(folder / "missing")
    with pytest.raises(InputFileError) as err:
        deeptte_ingest(folder)
    assert str(err.value) == (f"{folder / 'train_02'}: dangling or looping symbolic link to {folder / 'missing'} "
                              "(its target cannot be read)")


# ---------------------------------------------------------------------------------------------
# Timestamps: implausible times rejected with their reason; the range is configurable


def test_implausible_times_are_rejected_with_their_reason(porto_lines, deeptte_lines, cab_slice, tmp_path):
    rows = list(porto_lines)
    start = int(rows[1].split(b",")[5].strip(b'"'))
    rows[1] = set_field(rows[1], 5, str(start * 1000))  # milliseconds
    rows[3] = set_field(rows[3], 5, "-5")  # negative
    rows[4] = set_field(rows[4], 5, "4102444800")  # 2100-01-01: far future
    rows[7] = set_field(rows[7], 5, "9223372036854775000")  # near the int64 limit: would overflow
    rows[8] = set_field(rows[8], 5, "99999999999999999999")  # beyond int64
    path = tmp_path / "train.csv"
    path.write_bytes(b"".join(rows))
    trips, rej, qc = porto_ingest(path)
    assert dict(zip(rej["row"].astype(int), rej["reason"])) == {
        1: "time_in_milliseconds", 3: "negative_time", 4: "time_outside_plausible_years",
        7: "timestamp_out_of_range", 8: "timestamp_not_integer", 2: "impossible_speed", 5: "impossible_speed",
        6: "impossible_speed", 9: "impossible_speed"}
    assert counts(qc)["in"] == 12 and counts(qc)["kept"] == 3

    # per-city range: Porto's 2013 trips are outside [2015, 2016] (all 12 rows but the negative
    # one and the two the reader rejects); null turns the check off
    _, rej2, _ = porto_ingest(tmp_path / "train.csv", plausible_years=[2015, 2016])
    assert (rej2["reason"] == "time_outside_plausible_years").sum() == 9
    _, rej3, _ = porto_ingest(tmp_path / "train.csv", plausible_years=None)
    assert "time_in_milliseconds" not in set(rej3["reason"])
    assert plausible_time_range({"trajectories": {"format": "porto_csv"}, "filters": {}}) == (1356998400, 1420070400)

    # Cabspotting: a cab file written in milliseconds; a latitude too large for a float (inf)
    name, raw = cab_slice
    root = tmp_path / "cabspottingdata"
    root.mkdir()
    (root / "new_a.txt").write_bytes(raw)
    ms = b"".join(b" ".join(line.split()[:3] + [b"%d000" % int(line.split()[3])]) + b"\n"
                  for line in raw.splitlines())
    (root / "new_m.txt").write_bytes(ms)
    huge = raw.splitlines()
    huge[0] = b"1e400 " + b" ".join(huge[0].split()[1:])
    (root / "new_z.txt").write_bytes(b"\n".join(huge) + b"\n")
    trips_c, rej_c, qc_c = cab_ingest(root)
    qc_c = counts(qc_c)
    n_occupied_a = qc_c["kept"] + qc_c.get("rejected:too_few_fixes", 0)
    # the ms file's 400 fixes are dropped before runs are cut, counted; the huge latitude's trip (if
    # the fix is in a fare) is invalid_coordinate
    assert qc_c["fixes_in"] == 1200 and qc_c["fixes_dropped:time_in_milliseconds"] == 400
    assert not (trips_c["taxi_id"] == "m").any() and not rej_c["trip_id"].str.startswith("m_").any()
    n_a, n_z = int((trips_c["taxi_id"] == "a").sum()), int((trips_c["taxi_id"] == "z").sum())
    n_z_bad = int((rej_c["trip_id"].str.startswith("z_") & (rej_c["reason"] == "invalid_coordinate")).sum())
    assert n_a > 0 and n_z + n_z_bad == n_a and n_occupied_a >= n_a

    # DeepTTE time_gap in milliseconds: the record's own travel time (s) says so
    recs = [json.loads(line) for line in deeptte_lines]
    recs[2]["time_gap"] = [g * 1000 for g in recs[2]["time_gap"]]
    recs[4]["driverID"] = None
    jl = tmp_path / "chengdu.jsonl"
    jl.write_text("".join(json.dumps(r) + "\n" for r in recs))
    _, rej4, qc4 = deeptte_ingest(jl)
    assert dict(zip(rej4["row"].astype(int), rej4["reason"])) == {3: "time_gap_in_milliseconds",
                                                                  5: "missing_driver_id"}
    assert counts(qc4) == {"in": 10, "kept": 8, "rejected:missing_driver_id": 1,
                           "rejected:time_gap_in_milliseconds": 1}


# ---------------------------------------------------------------------------------------------
# Ids and labels: never silently a label


def test_empty_ids_and_unknown_call_types_are_rejected_and_counted(porto_lines, tmp_path):
    rows = list(porto_lines)
    rows[1] = set_field(rows[1], 0, "")  # TRIP_ID
    rows[3] = set_field(rows[3], 4, " ")  # TAXI_ID
    rows[4] = set_field(rows[4], 1, "D")  # CALL_TYPE outside A/B/C
    rows[7] = set_field(rows[7], 1, "")
    path = tmp_path / "train.csv"
    path.write_bytes(b"".join(rows))
    trips, rej, qc = porto_ingest(path)
    assert counts(qc) == {"in": 12, "kept": 4, "rejected:empty_trip_id": 1, "rejected:empty_taxi_id": 1,
                          "rejected:invalid_call_type": 2, "rejected:impossible_speed": 4}
    assert set(trips["call_type"]) <= {"A", "B", "C"} and (trips["taxi_id"].str.strip() != "").all()


# ---------------------------------------------------------------------------------------------
# OSM geometry: impossible nodes, conflicting duplicates, a network outside the city


def _osm_variant(tmp_path: Path, old: str, new: str) -> str:
    text = (CORPUS / "osm_control.osm").read_text()
    assert old in text
    (tmp_path / "x.osm").write_text(text.replace(old, new, 1))
    return "x.osm"


def _first_node(text: str) -> tuple[str, str, str]:
    import re

    m = re.search(r'<node id="(\d+)"[^>]*?lat="([-0-9.]+)" lon="([-0-9.]+)"', text)
    return m.groups()


def test_osm_impossible_or_conflicting_nodes_and_foreign_network_are_refused(tmp_path):
    text = (CORPUS / "osm_control.osm").read_text()
    nid, lat, lon = _first_node(text)
    name = _osm_variant(tmp_path, f'lat="{lat}"', 'lat="95.0"')
    with pytest.raises(RoadNetworkError) as err:
        build_road_network({"file": name}, tmp_path, "EPSG:32629")
    assert str(err.value) == (f"{tmp_path / name}: node {nid} has lat 95.0, lon {lon}: outside lat [-90, 90] / "
                              "lon [-180, 180]")

    # a node at the pole is a valid latitude, but Web Mercator stretches its streets ~44-fold
    name = _osm_variant(tmp_path, f'lat="{lat}"', 'lat="90.0"')
    with pytest.raises(RoadNetworkError) as err:
        build_road_network({"file": name}, tmp_path, "EPSG:3857")
    assert str(err.value) == (f"{tmp_path / name}: 6 road segment(s) are 2.37493e+08 m long in EPSG:3857 but "
                              f"5.431e+06 m on the ground, the first OSM way 23393876 from node {nid} to node "
                              "253283047: the CRS distorts them (outside its area of use, or a node at an impossible "
                              "position?)")

    dup = f'<node id="{nid}" lat="{lat}" lon="-8.0"/>\n'
    (tmp_path / "dup.osm").write_text(text.replace("</osm>", dup + "</osm>"))
    with pytest.raises(RoadNetworkError) as err:
        build_road_network({"file": "dup.osm"}, tmp_path, "EPSG:32629")
    assert str(err.value) == (f"{tmp_path / 'dup.osm'}: node {nid} is listed twice with different coordinates "
                              f"(lat {float(lat)}, lon {float(lon)}) and (lat {lat}, lon -8.0)")

    seg, _ = build_road_network({"file": "osm_control.osm"}, CORPUS, "EPSG:32629", bbox=[-8.70, 41.13, -8.54, 41.195])
    with pytest.raises(RoadNetworkError) as err:  # the San Francisco bbox with the Porto network
        build_road_network({"file": "osm_control.osm"}, CORPUS, "EPSG:32629", bbox=[-122.49, 37.775, -122.39, 37.815])
    lons = np.r_[seg["lon_start"], seg["lon_end"]]
    lats = np.r_[seg["lat_start"], seg["lat_end"]]
    ext = ", ".join(f"{v:.5f}" for v in (lons.min(), lats.min(), lons.max(), lats.max()))
    assert str(err.value) == (f"{CORPUS / 'osm_control.osm'}: the road network's extent [{ext}] (min_lon, min_lat, "
                              "max_lon, max_lat) does not overlap the city's bbox [-122.49000, 37.77500, -122.39000, "
                              "37.81500]; wrong OSM file or bbox?")

    with pytest.raises(RoadNetworkError) as err:
        build_road_network({"file": "osm_control.osm"}, CORPUS, "EPSG:999999")
    assert str(err.value).startswith(f"{CORPUS / 'osm_control.osm'}: crs 'EPSG:999999': not a coordinate reference "
                                     "system pyproj knows")


# ---------------------------------------------------------------------------------------------
# Crashes turned into messages / counted reasons: malformed POLYLINE shapes, huge numbers


def test_malformed_polylines_and_huge_numbers_are_counted(porto_lines, tmp_path):
    rows = list(porto_lines)
    rows[1] = set_field(rows[1], 8, "[-8.61, 41.14, -8.62, 41.15, -8.63, 41.16, -8.62, 41.15, -8.61, 41.14]")
    rows[3] = set_field(rows[3], 8, "((-8.61, 41.14), (-8.62, 41.15))")
    rows[4] = set_field(rows[4], 8, "[[1e400, 41.14], [-8.61, 41.14], [-8.61, 41.14], [-8.61, 41.14], [-8.61, 41.14]]")
    path = tmp_path / "train.csv"
    path.write_bytes(b"".join(rows))
    _, rej, qc = porto_ingest(path)
    assert dict(zip(rej["row"].astype(int), rej["reason"])) == {
        1: "polyline_not_list_of_pairs", 3: "polyline_not_json", 4: "invalid_coordinate", 2: "impossible_speed",
        5: "impossible_speed", 6: "impossible_speed", 9: "impossible_speed"}

    cab = tmp_path / "new_z.txt"
    cab.write_bytes(b"37.75 -122.39 0 99999999999999999999\n")
    with pytest.raises(InputFileError) as err:
        parse_cab_file(cab.read_bytes(), str(cab))
    assert str(err.value) == f"{cab}, row 1: unix_time '99999999999999999999' is too large for a 64-bit integer"


# ---------------------------------------------------------------------------------------------
# Config checked for meaning when the DAG is built


@pytest.fixture
def porto_config(repo):
    return yaml.safe_load((repo / "config.yaml").read_text())["cities"]["porto"]


@pytest.mark.parametrize("change, message", [
    ({"bbox": [-8.54, 41.13, -8.70, 41.195]}, "cities.porto.bbox: [-8.54, 41.13, -8.7, 41.195] is not [min_lon, "
     "min_lat, max_lon, max_lat] with min < max (swapped order?)"),
    ({"bbox": [41.13, -8.70, 41.195, -8.54]}, "cities.porto.bbox: [41.13, -8.7, 41.195, -8.54] is not inside the area "
     "of use of cities.porto.crs EPSG:32629 (Between 12°W and 6°W, northern hemisphere between equator and 84°N, "
     "onshore and offshore: lon -12.01 .. -6.0, lat 0.0 .. 84.01)"),
    ({"crs": "EPSG:4326"}, "cities.porto.crs: 'EPSG:4326' (WGS 84) is not a projected CRS; distances and lengths "
     "are in its units, so use a projected CRS in metres (e.g. the city's UTM zone)"),
    ({"crs": "EPSG:2263"}, "cities.porto.crs: 'EPSG:2263' (NAD83 / New York Long Island (ftUS)) has axes in "
     "['US survey foot'], not metres"),
    ({"crs": "EPSG:999999"}, "cities.porto.crs: 'EPSG:999999' is not a CRS pyproj knows (unknown EPSG code?)"),
    ({"timezone": "Europe/Lisbn"}, "cities.porto.timezone: 'Europe/Lisbn' is not an IANA time zone (e.g. "
     "'Europe/Lisbon')"),
    ({"split": {"train": 0.8, "val": 0.1, "test": 0.2, "seed": 0}}, "cities.porto.split: train + val + test = 1.1, "
     "must be 1 (got 0.8, 0.1, 0.2)"),
    ({"filters": {"min_points": 50, "max_points": 40, "max_speed_mps": 50}}, "cities.porto.filters: min_points = 50 "
     "> max_points = 40 (need min_points <= max_points)"),
    ({"filters": {**FILTERS, "plausible_years": [2014, 2013]}}, "cities.porto.filters.plausible_years: "
     "[2014, 2013] is not [first, last] with first <= last"),
])
def test_city_config_is_checked_for_meaning(porto_config, change, message):
    check_city_config("porto", porto_config)
    with pytest.raises(ValueError) as err:
        check_city_config("porto", {**porto_config, **change})
    assert str(err.value) == message


@pytest.mark.e2e
def test_dry_run_refuses_a_misspelt_time_zone_before_any_job(repo, data_root, tmp_path):
    config = yaml.safe_load((repo / "config.yaml").read_text())
    config["data_root"] = str(data_root)
    config["cities"]["sanfrancisco"]["timezone"] = "America/Los_Angles"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(repo / "Snakefile"),
                           "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
                           "--cores", "1", "results/porto/metatrl.csv"], capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert ("cities.sanfrancisco.timezone: 'America/Los_Angles' is not an IANA time zone (e.g. 'Europe/Lisbon')"
            in out), out[-2000:]
    assert "Job stats" not in out


# ---------------------------------------------------------------------------------------------
# Messages that say what a file is (magic bytes), consistent BOM handling


def test_files_are_named_by_what_they_are(porto_lines, cab_slice, tmp_path):
    csv_bytes = b"".join(porto_lines)
    gz_as_xz = tmp_path / "train.csv.xz"
    gz_as_xz.write_bytes(gzip.compress(csv_bytes))
    with pytest.raises(FileTypeError) as err:
        porto_ingest(gz_as_xz)
    assert str(err.value) == f"{gz_as_xz}: is gzip-compressed data, expected xz-compressed data (the name ends in .xz)"

    json_csv = tmp_path / "json.csv"
    json_csv.write_text('{"TRIP_ID": 1}\n')
    with pytest.raises(FileTypeError) as err:
        porto_ingest(json_csv)
    assert str(err.value) == (f"{json_csv}: is JSON text, expected a Porto train.csv (CSV text; plain, .gz, .bz2, "
                              ".xz or a .zip holding it)")

    # a zip of train.csv (as Kaggle distributes it) is read like the plain file
    zpath = tmp_path / "train.csv.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("train.csv", csv_bytes)
    assert counts(porto_ingest(zpath)[2]) == PORTO_BASE

    # ... but not where a tarball is expected; nor a CSV
    czip = tmp_path / "cabspottingdata.zip"
    with zipfile.ZipFile(czip, "w") as z:
        z.writestr("cabspottingdata/new_a.txt", cab_slice[1])
    with pytest.raises(FileTypeError) as err:
        cab_ingest(czip)
    assert str(err.value) == f"{czip}: is a zip archive, expected a tar archive (.tar, .tar.gz, .tar.bz2, .tar.xz)"
    ccsv = tmp_path / "cabs.tar.gz"
    ccsv.write_bytes(gzip.compress(csv_bytes))
    with pytest.raises(FileTypeError) as err:
        cab_ingest(ccsv)
    assert str(err.value) == (f"{ccsv}: is gzip-compressed data holding CSV text, expected a tar archive (.tar, "
                              ".tar.gz, .tar.bz2, .tar.xz)")

    # PBF and JSON given as OSM XML
    pbf = tmp_path / "city.osm"
    pbf.write_bytes(b"\x00\x00\x00\x0d\x0a\x09OSMHeader\x18\x7b" + bytes(200))
    with pytest.raises(RoadNetworkError) as err:
        build_road_network({"file": "city.osm"}, tmp_path, "EPSG:32629")
    assert str(err.value) == (f"{pbf}: is an OSM PBF file (binary protobuf), expected OSM XML (.osm, .osm.bz2, "
                              ".osm.gz, .osm.xz) (convert it with `osmium cat in.osm.pbf -o out.osm`)")
    js = tmp_path / "city.osm.bz2"
    js.write_bytes(bz2.compress(b'{"version": 0.6, "elements": []}'))
    with pytest.raises(RoadNetworkError) as err:
        build_road_network({"file": "city.osm.bz2"}, tmp_path, "EPSG:32629")
    assert str(err.value) == f"{js}: is bzip2-compressed data holding JSON text, expected OSM XML (.osm, .osm.bz2, " \
                             ".osm.gz, .osm.xz)"
    assert sniff(CORPUS / "osm_control.osm") == "osm_xml"


def test_a_utf8_bom_is_accepted_by_every_reader(porto_lines, deeptte_lines, cab_slice, tmp_path):
    bom = b"\xef\xbb\xbf"
    (tmp_path / "p.csv").write_bytes(bom + b"".join(porto_lines))
    assert counts(porto_ingest(tmp_path / "p.csv")[2]) == PORTO_BASE
    (tmp_path / "c.jsonl").write_bytes(b"".join(deeptte_lines))
    (tmp_path / "cb.jsonl").write_bytes(bom + b"".join(deeptte_lines))
    assert counts(deeptte_ingest(tmp_path / "cb.jsonl")[2]) == counts(deeptte_ingest(tmp_path / "c.jsonl")[2])
    name, raw = cab_slice
    plain, with_bom = parse_cab_file(raw, name), parse_cab_file(bom + raw, name)
    pd.testing.assert_frame_equal(plain, with_bom)
    assert len(plain) == 400
