"""DeepTTE Chengdu reader: the first real records, time convention, and malformed lines."""
from __future__ import annotations

import json
import lzma
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from trajzoo.ingest import InputFileError, ingest_city
from trajzoo.ingest.deeptte import deeptte_departure, read_deeptte_trips

CHENGDU = "chengdu/deeptte_test.jsonl.xz"
FILTERS = {"min_points": 5, "max_points": 400, "max_speed_mps": 50}
BBOX = [103.8, 30.4, 104.35, 30.95]


def real_lines(data_root: Path, n: int) -> list[str]:
    with lzma.open(data_root / CHENGDU, "rt", encoding="utf-8") as f:
        return [next(f) for _ in range(n)]


def test_departure_is_one_based_august_day_in_shanghai_time():
    # dateID 24, timeID 548 = 2014-08-24 09:08 in Chengdu (UTC+8) = 01:08 UTC
    assert deeptte_departure(24, 548) == int(datetime(2014, 8, 24, 1, 8, tzinfo=timezone.utc).timestamp())
    # dateID 25 is a Monday (weekday 0), which is the weekID the data gives it
    assert datetime(2014, 8, 25).weekday() == 0


def test_first_real_records(data_root):
    lines = real_lines(data_root, 3)
    blocks = list(read_deeptte_trips(data_root / CHENGDU, max_trips=3))
    trips = blocks[0][0]
    assert len(blocks) == 1 and len(blocks[0][1]) == 0
    assert list(trips["trip_id"]) == ["7361_1", "7361_2", "14391_3"]
    first = json.loads(lines[0])
    t = trips.iloc[0]
    assert t["taxi_id"] == "7361" and t["row"] == 1 and t["call_type"] is None
    assert t["timestamps"][0] == 1408842480
    np.testing.assert_array_equal(t["timestamps"] - 1408842480, np.array(first["time_gap"], dtype=np.int64))
    np.testing.assert_array_equal(t["lon"], first["lngs"])
    np.testing.assert_array_equal(t["lat"], first["lats"])
    assert len(t["lon"]) == 35


def test_ingest_whole_real_file_through_the_dispatch(data_root):
    city = {"trajectories": {"format": "deeptte_jsonl", "path": CHENGDU}, "bbox": BBOX, "filters": FILTERS,
            "caps": {"max_trips": None}}
    trips, rej, qc = ingest_city(city, data_root)
    counts = dict(zip(qc["outcome"], qc["count"]))
    assert counts == {"in": 1400, "kept": 1400}
    assert trips["n_points"].sum() == 50037
    assert trips["trip_id"].is_unique
    # one week of departures, 2014-08-24 .. 2014-08-30 local time
    assert datetime.fromtimestamp(trips["start_time"].min(), timezone.utc) == datetime(2014, 8, 23, 23, 23,
                                                                                        tzinfo=timezone.utc)
    narrow = {**city, "bbox": [103.9, 30.5, 104.3, 30.85]}
    _, rej2, qc2 = ingest_city(narrow, data_root)
    counts2 = dict(zip(qc2["outcome"], qc2["count"]))
    assert counts2 == {"in": 1400, "kept": 1386, "rejected:outside_bbox": 14}
    assert rej2["row"].notna().all()


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line if line.endswith("\n") else line + "\n" for line in lines), encoding="utf-8")
    return path


def test_bad_values_are_counted_rejections(tmp_path, data_root):
    good = real_lines(data_root, 1)[0]
    rec = json.loads(good)
    bad_len = {**rec, "lats": rec["lats"][:-1]}
    bad_week = {**rec, "weekID": 3}
    bad_date = {**rec, "dateID": 0}
    bad_num = {**rec, "lngs": ["a"] * len(rec["lngs"])}
    empty = {**rec, "lngs": [], "lats": [], "time_gap": []}
    path = write(tmp_path / "d.jsonl", [good, json.dumps(bad_len), "", json.dumps(bad_week), json.dumps(bad_date),
                                        json.dumps(bad_num), json.dumps(empty)])
    city = {"trajectories": {"format": "deeptte_jsonl", "path": "d.jsonl"}, "bbox": BBOX, "filters": FILTERS,
            "caps": {"max_trips": None}}
    trips, rej, qc = ingest_city(city, tmp_path)
    assert list(trips["trip_id"]) == ["7361_1"]
    assert dict(zip(rej["row"].astype(int), rej["reason"])) == {
        2: "point_lists_differ_in_length", 3: "weekid_mismatch", 4: "invalid_date_time", 5: "points_not_numeric",
        6: "empty_trajectory"}
    counts = dict(zip(qc["outcome"], qc["count"]))
    assert counts["in"] == 6 and counts["kept"] == 1


@pytest.mark.parametrize("second, problem", [
    ('{"lngs": [104.0, 104.1', "not valid JSON"),
    ("[1, 2, 3]", "expected a JSON object"),
    ('{"lngs": [104.0], "lats": [30.6]}', "missing key(s) ['time_gap', 'driverID', 'dateID', 'timeID']"),
])
def test_structural_problems_name_file_row_and_line(tmp_path, data_root, second, problem):
    good = real_lines(data_root, 1)[0]
    path = write(tmp_path / "d.jsonl", [good, "", second])
    with pytest.raises(InputFileError) as err:
        list(read_deeptte_trips(path))
    assert err.value.row == 2 and err.value.line == 3
    assert problem in str(err.value) and str(path) in str(err.value)


def test_truncated_xz_and_empty_file(tmp_path, data_root):
    data = lzma.compress("".join(real_lines(data_root, 20)).encode())
    cut = tmp_path / "cut.jsonl.xz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="truncated or corrupt .xz file"):
        list(read_deeptte_trips(cut))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputFileError, match="no data rows"):
        list(read_deeptte_trips(empty))
    with pytest.raises(InputFileError, match="not found"):
        list(read_deeptte_trips(tmp_path / "missing.jsonl"))


def test_non_utf8_line(tmp_path, data_root):
    path = tmp_path / "d.jsonl"
    path.write_bytes(real_lines(data_root, 1)[0].encode() + b'{"lngs": "\xff"}\n')
    with pytest.raises(InputFileError, match="not UTF-8") as err:
        list(read_deeptte_trips(path))
    assert err.value.row == 2


def test_folder_is_read_in_name_order_with_global_rows(tmp_path, data_root):
    lines = real_lines(data_root, 3)
    folder = tmp_path / "deeptte"
    folder.mkdir()
    write(folder / "train_01", [lines[2]])
    write(folder / "train_00", lines[:2])
    trips = list(read_deeptte_trips(folder))[0][0]
    assert list(trips["trip_id"]) == ["7361_1", "7361_2", "14391_3"]
    assert list(trips["row"]) == [1, 2, 3]
