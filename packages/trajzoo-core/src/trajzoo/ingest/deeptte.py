"""Reader for the Chengdu taxi trajectories published with DeepTTE (Wang et al., AAAI 2018).

Format (JSON lines, one trajectory per line; plain, .gz, .bz2 or .xz; a folder of such files is
read in file-name order, as the DeepTTE repository ships ``train_00`` .. ``train_04`` and
``test``)::

    {"lngs": [deg...], "lats": [deg...], "time_gap": [s since the first point...],
     "dist_gap": [km...], "dist": km, "time": s, "states": [0/1...], "driverID": int,
     "dateID": day of August 2014, "weekID": day of week, "timeID": minute of day}

Time convention (decided from the data, documented in the README): ``dateID`` is the 1-based
day of August 2014 and ``weekID`` is Python's ``date.weekday()`` (Monday = 0). In
``chengdu/deeptte_test.jsonl.xz`` dateID 24..30 come with weekID 6, 0, 1, .., 5; 2014-08-24 was
a Sunday and 2014-08-25 a Monday, so 1-based days agree with a Monday = 0 weekID, while 0-based
days would need a week starting on Tuesday. ``timeID`` is the departure minute of the local day
(Asia/Shanghai, UTC+8, no daylight saving) and ``time_gap`` the seconds of each point since the
departure, so ``timestamps = departure + round(time_gap)`` in Unix seconds (UTC). The departure
therefore has minute resolution (the source gives nothing finer).

Trip ids: the source has none, and (driverID, dateID, timeID) is not unique (117 repeats among
the 1,400 test trajectories, all different trajectories), so ``trip_id = "<driverID>_<row>"``
with ``row`` the 1-based data row counted over the whole input (files in name order).

Bad input, as for the other readers: a problem of the file's structure is an
:class:`~trajzoo.ingest.errors.InputFileError` naming the file, the data row and line, and the
problem (not UTF-8, not JSON, not a JSON object, a required key missing, truncated or corrupt
compressed data); a problem of a record's values is a counted rejection with one of
:data:`DEEPTTE_REASONS`. Point-level quality (coordinates, time order, bbox, speed) is left to the
shared filters (:mod:`trajzoo.ingest.filters`).
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from trajzoo.ingest.errors import InputFileError
from trajzoo.ingest.filetype import DECOMPRESS_ERRORS, describe, sniff, strip_bom
from trajzoo.ingest.filetype import FileTypeError
from trajzoo.ingest.porto import open_maybe_compressed

#: Keys every record must have (a missing one is an InputFileError).
DEEPTTE_REQUIRED_KEYS = ("lngs", "lats", "time_gap", "driverID", "dateID", "timeID")
#: Local time zone of ``timeID``.
DEEPTTE_TIMEZONE = "Asia/Shanghai"
#: Year and month of ``dateID`` (the DataCastle Chengdu data, August 2014).
DEEPTTE_YEAR, DEEPTTE_MONTH = 2014, 8
#: Rejection reasons of the reader (values inside a record).
DEEPTTE_REASONS = (
    "points_not_numeric", "point_lists_differ_in_length", "empty_trajectory", "time_gap_not_finite",
    "invalid_date_time", "weekid_mismatch", "missing_driver_id", "time_gap_in_milliseconds",
    "trip_longer_than_a_day",
)
#: Plausible UTC years of the data (August 2014), the default of ``filters.plausible_years``.
DEEPTTE_YEARS = (2014, 2014)
#: Longest trip (s) accepted; ``time_gap`` beyond it is in the wrong unit or wrong.
MAX_TRIP_SECONDS = 86_400
TRIP_OUT_COLUMNS = ["trip_id", "taxi_id", "call_type", "row", "timestamps", "lon", "lat"]


def deeptte_departure(date_id: int, time_id: int) -> int:
    """Unix seconds (UTC) of the departure ``timeID`` minutes after local midnight of
    2014-08-``dateID`` in Asia/Shanghai (1-based ``dateID``, see the module docstring).

    Raises:
        ValueError: ``date_id`` is not a day of August 2014.
    """
    local = datetime(DEEPTTE_YEAR, DEEPTTE_MONTH, int(date_id), tzinfo=ZoneInfo(DEEPTTE_TIMEZONE))
    return int((local + timedelta(minutes=int(time_id))).timestamp())


def _as_int(value) -> int | None:
    """An integral JSON number (``24`` or ``24.0``) as int, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _numbers(values) -> np.ndarray | None:
    """A JSON list of numbers as float64 (NaN allowed), else None."""
    if not isinstance(values, list) or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        return None
    return np.asarray(values, dtype=np.float64)


def parse_record(rec: dict) -> tuple[dict | None, str | None]:
    """Check one decoded record's values and turn it into a trip.

    Args:
        rec: one JSON object with at least :data:`DEEPTTE_REQUIRED_KEYS`.

    Returns:
        ``(trip, None)`` with trip keys taxi_id (str), timestamps (int64 Unix s), lon, lat
        (float64 degrees), or ``(None, reason)`` with a reason of :data:`DEEPTTE_REASONS`.
    """
    lon, lat, gap = _numbers(rec["lngs"]), _numbers(rec["lats"]), _numbers(rec["time_gap"])
    if lon is None or lat is None or gap is None:
        return None, "points_not_numeric"
    if not (len(lon) == len(lat) == len(gap)):
        return None, "point_lists_differ_in_length"
    if len(lon) == 0:
        return None, "empty_trajectory"
    if not np.isfinite(gap).all():
        return None, "time_gap_not_finite"
    if rec["driverID"] is None or (isinstance(rec["driverID"], str) and not rec["driverID"].strip()):
        return None, "missing_driver_id"
    duration = float(gap[-1] - gap[0])
    total = rec.get("time")
    if (isinstance(total, (int, float)) and not isinstance(total, bool) and math.isfinite(total) and total > 0
            and 500 <= duration / total <= 2000):
        return None, "time_gap_in_milliseconds"  # time_gap spans ~1000x the record's own travel time (s)
    if duration > MAX_TRIP_SECONDS:
        return None, "trip_longer_than_a_day"
    date_id, time_id = _as_int(rec["dateID"]), _as_int(rec["timeID"])
    if date_id is None or time_id is None or not (1 <= date_id <= 31) or not (0 <= time_id < 1440):
        return None, "invalid_date_time"
    start = deeptte_departure(date_id, time_id)
    week_id = rec.get("weekID")
    if week_id is not None:
        weekday = datetime(DEEPTTE_YEAR, DEEPTTE_MONTH, date_id).weekday()
        if _as_int(week_id) != weekday:
            return None, "weekid_mismatch"
    timestamps = start + np.rint(gap).astype(np.int64)
    return {"taxi_id": str(rec["driverID"]), "timestamps": timestamps, "lon": lon, "lat": lat}, None


def deeptte_files(path: Path) -> list[Path]:
    """The file itself, or every non-hidden file of a folder in name order.

    Raises:
        InputFileError: missing path, an empty folder, a dangling or looping link or a sub-folder
            in it (naming the entry: nothing in the folder is left out silently).
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file or folder not found")
    if path.is_dir():
        files = []
        for p in sorted(path.iterdir()):
            if p.name.startswith("."):
                continue
            if p.is_symlink() and not p.exists():
                raise InputFileError(p, f"dangling or looping symbolic link to {p.readlink()} (its target cannot "
                                        "be read)")
            if p.is_dir():
                raise InputFileError(p, "is a folder inside the DeepTTE folder: not read (put its files in "
                                        f"{path} or point trajectories.path at it)")
            files.append(p)
        if not files:
            raise InputFileError(path, "folder holds no DeepTTE JSON-lines file")
        return files
    return [path]


def read_deeptte_trips(path: Path, max_trips: int | None = None, block_rows: int = 20_000,
                       counts: dict | None = None) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Stream DeepTTE JSON lines as ``(trips, rejections)`` blocks of up to ``block_rows`` records.

    Memory is bounded by one block: the file is decompressed and decoded line by line.

    Args:
        path: a JSON-lines file (plain, .gz, .bz2, .xz) or a folder of them (name order).
        max_trips: read only the first ``max_trips`` data rows (``None`` reads all).
        block_rows: records per yielded block.
        counts: filled with ``records_read`` (non-blank lines read) once the generator is exhausted.

    Yields:
        ``trips``: columns :data:`TRIP_OUT_COLUMNS` (call_type None, row = 1-based data row over
        the whole input, timestamps int64 Unix s UTC, lon/lat float64 degrees as published; the
        datum is not stated and may be GCJ-02). ``rejections``: trip_id, row, reason.

    Raises:
        InputFileError: missing file, empty input (no data row), a line that is not UTF-8, not
            JSON or not a JSON object, a record without a key of :data:`DEEPTTE_REQUIRED_KEYS`, or
            truncated/corrupt compressed data; the message names the file, the data row and the
            line (1-based, of that file) and the problem.
    """
    row = 0
    trips: list[dict] = []
    rejected: list[dict] = []

    def flush():
        t = pd.DataFrame(trips, columns=["trip_id", "taxi_id", "row", "timestamps", "lon", "lat"])
        t.insert(2, "call_type", None)
        r = pd.DataFrame(rejected, columns=["trip_id", "row", "reason"])
        trips.clear()
        rejected.clear()
        return t[TRIP_OUT_COLUMNS], r

    for file in deeptte_files(path):
        kind = file.suffix.lower() if file.suffix.lower() in (".xz", ".gz", ".bz2") else None
        content = sniff(file, decompress=True)
        if content not in ("json", "empty", "text", "binary", "zip"):
            raise FileTypeError(file, f"is {describe(content)}, expected DeepTTE JSON lines")
        line_no = 0
        try:
            with open_maybe_compressed(file, zip_members=("",)) as f:
                for raw in f:
                    if max_trips is not None and row >= max_trips:
                        break
                    line_no += 1
                    if line_no == 1:
                        raw = strip_bom(raw)  # a UTF-8 BOM at the start of a file, as for the other readers
                    try:
                        text = raw.decode("utf-8")
                    except UnicodeDecodeError as ude:
                        raise InputFileError(file, f"byte {raw[ude.start]:#x} at byte {ude.start + 1} of the line "
                                                   "is not UTF-8 (is the file in another encoding?)",
                                             row=row + 1, line=line_no) from ude
                    if not text.strip():
                        continue  # blank lines are not rows
                    row += 1
                    try:
                        rec = json.loads(text)
                    except json.JSONDecodeError as jde:
                        raise InputFileError(file, f"not valid JSON ({jde.msg} at character {jde.pos + 1}); "
                                                   "expected one DeepTTE JSON object per line",
                                             row=row, line=line_no) from jde
                    if not isinstance(rec, dict):
                        raise InputFileError(file, f"expected a JSON object per line, found a JSON "
                                                   f"{type(rec).__name__}", row=row, line=line_no)
                    missing = [k for k in DEEPTTE_REQUIRED_KEYS if k not in rec]
                    if missing:
                        raise InputFileError(file, f"missing key(s) {missing} (a DeepTTE record needs "
                                                   f"{list(DEEPTTE_REQUIRED_KEYS)})", row=row, line=line_no)
                    trip_id = f"{rec['driverID']}_{row}"
                    trip, reason = parse_record(rec)
                    if reason is not None:
                        rejected.append({"trip_id": trip_id, "row": row, "reason": reason})
                    else:
                        trips.append({"trip_id": trip_id, "row": row, **trip})
                    if len(trips) + len(rejected) >= block_rows:
                        yield flush()
        except DECOMPRESS_ERRORS as exc:
            what = f"truncated or corrupt {kind} file" if kind else "unreadable file (truncated or corrupt?)"
            raise InputFileError(file, f"{what}: decompression failed after {line_no} complete line(s) ({exc})",
                                 row=row + 1, line=line_no + 1) from exc
        if max_trips is not None and row >= max_trips:
            break
    if counts is not None:
        counts["records_read"] = row
    if row == 0 and max_trips != 0:
        raise InputFileError(path, "no data rows: empty file (expected DeepTTE JSON lines)")
    if trips or rejected:
        yield flush()
