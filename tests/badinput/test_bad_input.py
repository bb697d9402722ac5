"""Bad input: every kind of malformed file in corpus/ ends in a named error or a counted rejection.

The corpus is written by make_corpus.py from slices of the real data (corpus/MANIFEST.md says
which rows and what defect). An error must name the file, the row where there is one, and the
problem; a rejection must carry its reason and keep the stage's counts (in = kept + rejected).
"""
from __future__ import annotations

import bz2
import copy
import csv
import filecmp
import gzip
import lzma
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from trajzoo.ingest import InputFileError, ingest_city
from trajzoo.roads.network import RoadNetworkError, build_road_network

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

PORTO = {"bbox": [-8.70, 41.13, -8.54, 41.195],
         "filters": {"min_points": 5, "max_points": 400, "max_speed_mps": 50}, "caps": {"max_trips": None}}
SF = {"bbox": [-122.49, 37.775, -122.39, 37.815],
      "filters": {"min_points": 5, "max_points": 400, "max_speed_mps": 50}, "caps": {"max_trips": None}}
CAB_SOURCE = {"format": "cabspotting", "occupied_runs": {"max_gap_seconds": 300, "min_fixes": 5}}


def ingest_porto(name: str):
    return ingest_city({**PORTO, "trajectories": {"format": "porto_csv", "path": name}}, CORPUS)


def ingest_cabs(name: str):
    return ingest_city({**SF, "trajectories": {**CAB_SOURCE, "path": name}}, CORPUS)


def qc_counts(qc) -> dict:
    assert (qc["stage"] == "ingest").all()
    assert qc["outcome"].is_unique
    return dict(zip(qc["outcome"], qc["count"].astype(int)))


def trip_ids_by_row(name: str) -> dict[int, str]:
    """TRIP_ID of every data row of a corpus CSV (read with the csv module, not the reader under test)."""
    with open(CORPUS / name, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    return {i: r[0] for i, r in enumerate(rows, start=1)}


# ---------------------------------------------------------------------------------------------
# Porto: values inside a row -> counted rejections with a reason and the row


@pytest.mark.parametrize("name, rejected", [
    ("porto_polyline_not_json.csv", {2: "polyline_not_json"}),
    ("porto_empty_polyline.csv", {2: "empty_polyline", 4: "empty_polyline"}),
    ("porto_single_point.csv", {2: "too_few_points"}),
    ("porto_nan_coordinate.csv", {2: "invalid_coordinate", 3: "invalid_coordinate"}),
    ("porto_out_of_range.csv", {2: "invalid_coordinate"}),
    ("porto_swapped_lonlat.csv", {2: "swapped_lon_lat"}),
    ("porto_far_outside_bbox.csv", {2: "outside_bbox"}),
    ("porto_teleport.csv", {2: "impossible_speed"}),
    ("porto_timestamp_not_integer.csv", {2: "timestamp_not_integer"}),
    ("porto_point_not_pair.csv", {2: "polyline_point_not_lon_lat_pair"}),
])
def test_porto_bad_rows_are_rejected_with_reason_row_and_counts(name, rejected):
    ids = trip_ids_by_row(name)
    trips, rej, qc = ingest_porto(name)
    assert dict(zip(rej["row"].astype(int), rej["reason"])) == rejected
    assert list(rej["trip_id"]) == [ids[r] for r in rejected]
    n_in = len(ids)
    expected = {"in": n_in, "kept": n_in - len(rejected)}
    expected.update({f"rejected:{reason}": n for reason, n in Counter(rejected.values()).items()})
    assert qc_counts(qc) == expected
    # the kept trips are exactly the untouched real rows, in file order
    assert list(trips["trip_id"]) == [ids[r] for r in sorted(ids) if r not in rejected]


def test_porto_repeated_trip_id_is_kept_under_a_derived_id():
    """Row 4 repeats row 1 exactly (rejected ``duplicate_trip``); row 5 is another real trip (row 7
    of the file) under row 3's id: kept as ``<id>_2`` and counted, not lost."""
    ids = trip_ids_by_row("porto_duplicate_trip_id.csv")
    trips, rej, qc = ingest_porto("porto_duplicate_trip_id.csv")
    assert dict(zip(rej["row"].astype(int), rej["reason"])) == {4: "duplicate_trip"}
    assert list(trips["trip_id"]) == [ids[1], ids[2], ids[3], f"{ids[2]}_2"]
    assert qc_counts(qc) == {"in": 5, "kept": 4, "rejected:duplicate_trip": 1, "kept_renamed:duplicate_trip_id": 1}
    # the renamed trip is row 5's own trip, not a copy of row 3's
    assert trips.iloc[3]["start_time"] != trips.iloc[1]["start_time"]
    again, _, _ = ingest_porto("porto_duplicate_trip_id.csv")  # stable: the same ids on every read
    assert list(again["trip_id"]) == list(trips["trip_id"])


def test_teleport_row_is_a_real_jump_above_60_mps():
    """The teleport kind is a real row; its jump is far above the 50 m/s limit and above 60 m/s."""
    from trajzoo.ingest.filters import haversine_m

    trips, _, _ = ingest_city({**PORTO, "filters": {**PORTO["filters"], "max_speed_mps": 1000},
                               "trajectories": {"format": "porto_csv", "path": "porto_teleport.csv"}}, CORPUS)
    t = trips.iloc[1]
    speed = haversine_m(t["lon"][:-1], t["lat"][:-1], t["lon"][1:], t["lat"][1:]) / np.diff(t["timestamps"])
    assert speed.max() > 60


# ---------------------------------------------------------------------------------------------
# Porto: a broken file -> InputFileError naming the file, the row (if any) and the problem


@pytest.mark.parametrize("name, row, line, words", [
    ("porto_extra_field.csv", 3, 4, ["wrong field count", "expected 9", "found 10"]),
    ("porto_missing_field.csv", 2, 3, ["wrong field count", "expected 9", "found 8"]),
    ("porto_non_utf8.csv", 3, 4, ["byte 0xc7", "not UTF-8"]),
    ("porto_truncated.csv.xz", 19, 20, ["truncated or corrupt .xz file", "after 18 complete data rows"]),
    ("porto_truncated.csv.gz", 19, 20, ["truncated or corrupt .gz file", "after 18 complete data rows"]),
    ("porto_truncated.csv.bz2", 11, 12, ["truncated or corrupt .bz2 file", "after 10 complete data rows"]),
    ("porto_missing_column.csv", None, 1, ["missing column(s) ['MISSING_DATA']"]),
    ("porto_wrong_delimiter.csv", None, 1, ["missing column(s)", "separated by ';'", "wrong delimiter"]),
    ("porto_empty.csv", None, None, ["empty file"]),
    ("porto_header_only.csv", None, None, ["no data rows", "header only"]),
])
def test_porto_broken_file_error_names_file_row_and_problem(name, row, line, words):
    with pytest.raises(InputFileError) as err:
        ingest_porto(name)
    e = err.value
    assert (e.path, e.row, e.line) == (str(CORPUS / name), row, line)
    msg = str(e)
    if row is not None:
        assert msg.startswith(f"{CORPUS / name}, row {row} (line {line}): ")
    elif line is not None:
        assert msg.startswith(f"{CORPUS / name}, line {line}: ")
    else:
        assert msg.startswith(f"{CORPUS / name}: ")
    for word in words:
        assert word in msg


def complete_lines(data: bytes) -> int:
    return data.count(b"\n")


@pytest.mark.parametrize("name, decompress, row", [
    ("porto_truncated.csv.xz", lambda b: lzma.LZMADecompressor().decompress(b), 19),
    ("porto_truncated.csv.gz", lambda b: zlib.decompressobj(wbits=31).decompress(b), 19),
    ("porto_truncated.csv.bz2", None, 11),
])
def test_truncated_files_name_the_first_row_that_is_not_there(name, decompress, row):
    """The row named for a truncated file is one past the last complete line the decompressor gives."""
    raw = (CORPUS / name).read_bytes()
    if decompress is None:  # two bz2 streams: the first is whole, the second cut
        first = bz2.BZ2Decompressor()
        data = first.decompress(raw)
        data += bz2.BZ2Decompressor().decompress(first.unused_data)
    else:
        data = decompress(raw)
    assert complete_lines(data) - 1 + 1 == row  # minus the header, plus one: the first missing row
    with pytest.raises(Exception, match="ended before the end-of-stream marker"):  # really cut
        {".xz": lzma.decompress, ".gz": gzip.decompress, ".bz2": bz2.decompress}[Path(name).suffix](raw)


def test_missing_data_root_names_the_path(tmp_path):
    with pytest.raises(InputFileError, match=r"no-such-folder/porto_teleport\.csv: file not found"):
        ingest_city({**PORTO, "trajectories": {"format": "porto_csv", "path": "porto_teleport.csv"}},
                    tmp_path / "no-such-folder")


# ---------------------------------------------------------------------------------------------
# Cabspotting


def cab_trips(name: str):
    trips, rej, qc = ingest_cabs(name)
    return trips, rej, qc_counts(qc)


FIXES_CLEAN = {"fixes_in": 42, "fixes_dropped:duplicate_timestamp": 0, "fixes_dropped:invalid_occupancy": 0,
               "fixes_resorted:out_of_order": 0}
CAB_FILE = "cabspottingdata/new_abboip.txt"


def test_cab_control_reads_three_runs():
    trips, rej, counts = cab_trips("cab_control")
    assert counts == {"in": 3, "kept": 3, **FIXES_CLEAN}
    assert list(trips["n_points"]) == [6, 11, 8] and len(rej) == 0


def test_a_free_fix_between_two_fares_gives_two_trips():
    """Real fixes: a fare of 11 fixes, ONE free fix 4 s later, the next fare 2 s after it. The
    publisher's file holds every fix; an occupancy change ends a fare even without a time gap."""
    lines = (CORPUS / "cab_control" / CAB_FILE).read_text().splitlines()
    oldest_first = [line.split() for line in reversed(lines)]
    occ = [f[2] for f in oldest_first]
    free = [i for i in range(1, len(occ) - 1) if occ[i] == "0" and occ[i - 1] == occ[i + 1] == "1"]
    assert len(free) == 1
    i = free[0]
    t = [int(f[3]) for f in oldest_first]
    assert t[i] - t[i - 1] < 300 and t[i + 1] - t[i] < 300  # no gap could have split the fares
    trips, _, _ = cab_trips("cab_control")
    fare_a, fare_b = trips.iloc[1], trips.iloc[2]
    assert fare_a["timestamps"][-1] == t[i - 1] and fare_b["timestamps"][0] == t[i + 1]
    assert t[i] not in {int(x) for ts in trips["timestamps"] for x in ts}  # the free fix is in no trip
    assert fare_a["trip_id"] != fare_b["trip_id"]


def assert_same_trips(a, b):
    assert list(a["trip_id"]) == list(b["trip_id"])
    for col in ("timestamps", "lon", "lat"):
        for x, y in zip(a[col], b[col]):
            np.testing.assert_array_equal(x, y)


def test_cab_duplicate_timestamps_are_dropped_and_counted():
    control, _, _ = cab_trips("cab_control")
    trips, rej, counts = cab_trips("cab_duplicate_timestamps")
    assert counts == {"in": 3, "kept": 3, **FIXES_CLEAN, "fixes_in": 44, "fixes_dropped:duplicate_timestamp": 2}
    assert_same_trips(trips, control)  # the first fix of each timestamp (file order) is kept
    assert all((np.diff(t) > 0).all() for t in trips["timestamps"])


def test_cab_out_of_order_file_is_sorted_and_counted():
    control, _, _ = cab_trips("cab_control")
    trips, rej, counts = cab_trips("cab_out_of_order")
    assert counts == {"in": 3, "kept": 3, **FIXES_CLEAN, "fixes_resorted:out_of_order": 1}
    assert_same_trips(trips, control)


def test_cab_invalid_occupancy_is_counted_and_ends_runs():
    trips, rej, counts = cab_trips("cab_invalid_occupancy")
    assert counts == {"in": 5, "kept": 3, "rejected:too_few_fixes": 2, **FIXES_CLEAN,
                      "fixes_dropped:invalid_occupancy": 2}
    assert list(trips["n_points"]) == [5, 5, 8]
    assert list(rej["reason"]) == ["too_few_fixes", "too_few_fixes"]
    # the fixes with occupancy 2 and -1 are in no trip
    bad_times = {1211479911, 1211478706}
    lines = (CORPUS / "cab_invalid_occupancy" / CAB_FILE).read_text().splitlines()
    assert {int(line.split()[3]) for line in lines if line.split()[2] not in ("0", "1")} == bad_times
    assert not bad_times & {int(t) for ts in trips["timestamps"] for t in ts}


@pytest.mark.parametrize("folder, row, words", [
    ("cab_non_utf8", 5, ["byte 0xb0", "not UTF-8"]),
    ("cab_wrong_field_count", 10, ["wrong field count", "expected 4", "found 3"]),
])
def test_cab_broken_file_error_names_file_row_and_problem(folder, row, words):
    with pytest.raises(InputFileError) as err:
        ingest_cabs(folder)
    path = CORPUS / folder / CAB_FILE
    assert (err.value.path, err.value.row) == (str(path), row)
    assert str(err.value).startswith(f"{path}, row {row}: ")
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("name, words", [
    ("cab_truncated.tar.xz", ["truncated or corrupt archive",
                              "after 1 complete cab file(s), the last cabspottingdata/new_abboip.txt"]),
    ("cab_empty.tar.xz", ["empty file"]),
])
def test_cab_broken_archive_error_names_the_archive(name, words):
    with pytest.raises(InputFileError) as err:
        ingest_cabs(name)
    assert err.value.path == str(CORPUS / name) and err.value.row is None
    assert str(err.value).startswith(f"{CORPUS / name}: ")
    for word in words:
        assert word in str(err.value)


# ---------------------------------------------------------------------------------------------
# OpenStreetMap


def roads(name: str):
    return build_road_network({"file": name}, CORPUS, "EPSG:32629")


def test_osm_control_builds():
    seg, adj = roads("osm_control.osm")
    assert len(seg) == 6  # three two-way streets
    assert set(adj["src"]) == set(adj["dst"]) == set(seg["segment_id"])


def test_osmnx_itself_names_no_way_for_missing_nodes():
    """Pins osmnx 2.1.1's behaviour that network.py works around: a bare ValueError."""
    import osmnx as ox

    with pytest.raises(ValueError, match="Some edges missing nodes") as err:
        ox.graph_from_xml(CORPUS / "osm_missing_nodes.osm", simplify=False, retain_all=True)
    assert "23393876" not in str(err.value)


@pytest.mark.parametrize("name, words", [
    ("osm_missing_nodes.osm", ["way 23393876 references node(s) [3570147018] missing from the file",
                               "1 of 3 ways"]),
    ("osm_no_drivable.osm", ["no drivable road"]),
    ("osm_truncated.osm.bz2", ["truncated or corrupt"]),
])
def test_osm_error_names_file_and_problem(name, words):
    with pytest.raises(RoadNetworkError) as err:
        roads(name)
    assert str(err.value).startswith(f"{CORPUS / name}: ")
    for word in words:
        assert word in str(err.value)


def test_osm_missing_data_root_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no-such-folder/osm_control\.osm"):
        build_road_network({"file": "osm_control.osm"}, tmp_path / "no-such-folder", "EPSG:32629")


# ---------------------------------------------------------------------------------------------
# config.yaml (snakemake dry runs: validation happens before any rule)


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def dry_run(repo: Path, work: Path, data_root: Path, fragment: str | None):
    config = yaml.safe_load((repo / "config.yaml").read_text())
    config["data_root"] = str(data_root)
    if fragment:
        config = deep_merge(config, yaml.safe_load((CORPUS / fragment).read_text()))
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(repo / "Snakefile"),
           "--directory", str(work), "results/porto/metatrl.csv"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_config_control_dry_run_passes(repo, data_root, tmp_path):
    code, out = dry_run(repo, tmp_path, data_root, None)
    assert code == 0, out[-3000:]
    assert "Job stats" in out and "ingest_trajectories" in out  # the unmodified config plans the DAG


@pytest.mark.parametrize("fragment, words", [
    ("config_unknown_key.yaml", ["Error validating config file", "'max_sped_mps' was unexpected",
                                 "['cities']['porto']['filters']"]),
    ("config_wrong_type.yaml", ["Error validating config file", "'1000' is not of type 'integer', 'null'",
                                "['cities']['porto']['caps']['max_trips']"]),
    ("config_missing_data_root.yaml", ["data_root no-such-folder/data does not exist"]),
])
def test_bad_config_fails_before_any_rule(repo, data_root, tmp_path, fragment, words):
    code, out = dry_run(repo, tmp_path, data_root, fragment)
    assert code == 1, out[-3000:]
    for word in words:
        assert word in out
    assert "Job stats" not in out  # nothing was planned


# ---------------------------------------------------------------------------------------------
# the corpus itself


def test_corpus_is_what_make_corpus_writes(data_root, tmp_path):
    """make_corpus.py is deterministic and the committed files are its output."""
    subprocess.run([sys.executable, str(HERE / "make_corpus.py"), "--data-root", str(data_root),
                    "--out", str(tmp_path)], check=True, capture_output=True, timeout=300)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(CORPUS) for p in CORPUS.rglob("*") if p.is_file())
    assert made == committed
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, CORPUS, [str(p) for p in made], shallow=False)
    assert mismatch == [] and errors == []


def test_corpus_is_small_and_has_every_kind():
    files = [p for p in CORPUS.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 300_000
    assert max(p.stat().st_size for p in files) < 8_000
    manifest = (CORPUS / "MANIFEST.md").read_text()
    kinds = [line for line in manifest.splitlines() if line.startswith("| `") and "control" not in line]
    assert len(kinds) >= 22
