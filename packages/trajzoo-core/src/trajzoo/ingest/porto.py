"""Reader for the ECML/PKDD 2015 Porto taxi ``train.csv`` (Kaggle "Taxi Trajectory Prediction").

Columns: TRIP_ID, CALL_TYPE, ORIGIN_CALL, ORIGIN_STAND, TAXI_ID, TIMESTAMP (Unix s, UTC),
DAY_TYPE, MISSING_DATA, POLYLINE (JSON list of [lon, lat], one point every 15 s).
The file is streamed (plain, .zip as distributed, .gz, .bz2 or .xz) with pyarrow's CSV reader and each block's POLYLINE
is decoded with DuckDB, so the full 1.8 GB file is never loaded at once.
"""
from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from trajzoo.ingest.errors import InputFileError

PORTO_COLUMNS = [
    "TRIP_ID", "CALL_TYPE", "ORIGIN_CALL", "ORIGIN_STAND", "TAXI_ID", "TIMESTAMP", "DAY_TYPE",
    "MISSING_DATA", "POLYLINE",
]
#: Seconds between two POLYLINE points (the challenge's sampling rate).
PORTO_SAMPLING_SECONDS = 15


#: Errors that reading (and decompressing) a CSV stream can raise; each becomes an InputFileError.
READ_ERRORS = (pa.ArrowException, OSError, EOFError, lzma.LZMAError, zlib.error, UnicodeDecodeError,
               zipfile.BadZipFile)
#: Errors of the decompressors alone (truncated or corrupt .xz, .gz, .bz2, .zip data).
DECOMPRESS_ERRORS = (EOFError, OSError, lzma.LZMAError, zlib.error, zipfile.BadZipFile)


def open_zip_member(path: Path):
    """Open the one data file inside a zip archive (Kaggle's ``train.csv.zip`` holds ``train.csv``).

    Folders and macOS metadata (``__MACOSX/``) are skipped.

    Raises:
        zipfile.BadZipFile: not a zip archive, or it holds no file or several files.
    """
    zf = zipfile.ZipFile(path)
    members = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    if len(members) != 1:
        zf.close()
        raise zipfile.BadZipFile(f"expected one file inside the zip archive, found {[m.filename for m in members]}")
    return zf.open(members[0])  # the member keeps the archive open until it is closed


def open_maybe_compressed(path: Path):
    """Open ``path`` for binary reading, decompressing .gz/.bz2/.xz by suffix (.zip: its one
    member, :func:`open_zip_member`)."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return open_zip_member(path)
    if suffix == ".xz":
        return lzma.open(path, "rb")
    if suffix == ".bz2":
        return bz2.open(path, "rb")
    if suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def header_problem(names: list[str], required: list[str]) -> str | None:
    """Describe what is wrong with a CSV header, or None if it has every ``required`` column.

    A header read as one column that contains ``;``, a tab or ``|`` is reported as a wrong
    delimiter; otherwise the missing column names are listed.
    """
    missing = [c for c in required if c not in names]
    if not missing:
        return None
    delim = next((d for d in (";", "\t", "|") if len(names) == 1 and d in names[0]), None)
    why = (f"the header is separated by {delim!r}, not ',' (wrong delimiter)" if delim else
           f"the header has {names} (not a Porto train.csv?)")
    return f"missing column(s) {missing}: {why}"


def locate_csv_problem(path: Path, exc: BaseException | None = None, rows_read: int = 0,
                       required: list[str] | None = None) -> InputFileError:
    """Find where and why a CSV file cannot be read, after pyarrow (or a decompressor) failed.

    pyarrow's streaming CSV reader reports no row number, so the (decompressed) file is scanned
    again line by line, in Python, for the first of: a byte that is not UTF-8, a data row whose
    field count differs from the header's, or the point where decompression fails (a truncated or
    corrupt .xz/.gz/.bz2 file). Only called on the error path.

    Args:
        path: the CSV file (plain or compressed).
        exc: the original error, quoted when the scan finds nothing more precise.
        rows_read: data rows pyarrow already read without error; their fields are not re-checked.
        required: column names the header must have (see :func:`header_problem`); a header
            problem is reported before any row problem.

    Returns:
        An :class:`InputFileError` naming the file, the 1-based data row and line when there is one
        (``None`` for problems in the header), and the problem ("is not UTF-8", "missing column",
        "wrong delimiter", "wrong field count", "truncated or corrupt", "empty file").
    """
    kind = {".xz": ".xz", ".bz2": ".bz2", ".gz": ".gz", ".zip": ".zip"}.get(path.suffix.lower())
    line_no, data_row, n_fields = 0, 0, None
    try:
        with open_maybe_compressed(path) as f:
            for raw in f:
                line_no += 1
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as ude:
                    where = "in the header" if n_fields is None else "in a data row"
                    return InputFileError(
                        path, f"byte {raw[ude.start]:#x} at byte {ude.start + 1} of the line is not UTF-8 "
                              f"({where}; is the file in another encoding?)",
                        row=None if n_fields is None else data_row + 1, line=line_no)
                if not text.rstrip("\r\n"):
                    continue  # pyarrow skips empty lines; they are not rows
                if n_fields is None:
                    names = next(csv.reader([text]))
                    problem = header_problem(names, required or [])
                    if problem:
                        return InputFileError(path, problem, line=line_no)
                    n_fields = len(names)
                    continue
                data_row += 1
                if data_row <= rows_read:
                    continue
                found = len(next(csv.reader([text])))
                if found != n_fields:
                    return InputFileError(
                        path, f"wrong field count: expected {n_fields} comma-separated fields as in the "
                              f"header, found {found}", row=data_row, line=line_no)
    except DECOMPRESS_ERRORS as dexc:
        what = f"truncated or corrupt {kind} file" if kind else "unreadable file (truncated or corrupt?)"
        if n_fields is None:
            return InputFileError(path, f"{what}: decompression failed before the end of the header ({dexc})")
        return InputFileError(
            path, f"{what}: decompression failed after {data_row} complete data rows ({dexc})",
            row=data_row + 1, line=line_no + 1)
    if n_fields is None:
        return InputFileError(path, "empty file: no header and no data rows")
    return InputFileError(path, f"cannot read as CSV after data row {rows_read}: {exc}")


_DECODE_SQL = """
SELECT
    TRIP_ID AS trip_id, TAXI_ID AS taxi_id, CALL_TYPE AS call_type, ORIGIN_CALL AS origin_call,
    ORIGIN_STAND AS origin_stand, DAY_TYPE AS day_type, MISSING_DATA AS missing_data,
    TRY_CAST(TIMESTAMP AS BIGINT) AS start_time,
    TRY_CAST(POLYLINE AS DOUBLE[][]) AS points,
    POLYLINE IS NULL OR trim(POLYLINE) = '' AS polyline_missing
FROM block
"""


def _reason(row_points, polyline_missing: bool, start_time) -> str | None:
    if polyline_missing:
        return "empty_polyline"
    if row_points is None or row_points is pd.NA or (isinstance(row_points, float) and np.isnan(row_points)):
        return "polyline_not_json"
    if len(row_points) == 0:
        return "empty_polyline"
    if any(p is None or len(p) != 2 for p in row_points):
        return "polyline_point_not_lon_lat_pair"
    if start_time is None or pd.isna(start_time):
        return "timestamp_not_integer"
    return None


def _points_array(pts) -> np.ndarray:
    """``(n, 2)`` float64 lon/lat of one decoded POLYLINE (n >= 1 pairs).

    A JSON ``null`` inside a pair comes back from DuckDB as a masked value; it becomes NaN and the
    trip is rejected later as ``invalid_coordinate``.
    """
    if any(isinstance(p, np.ma.MaskedArray) for p in pts):
        return np.asarray([np.ma.filled(np.ma.asarray(p, dtype=np.float64), np.nan) for p in pts],
                          dtype=np.float64)
    return np.stack(pts).astype(np.float64, copy=False)


def read_porto_trips(path: Path, max_trips: int | None = None, block_size: int = 1 << 24
                     ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Stream a Porto train.csv as ``(trips, rejections)`` blocks.

    Args:
        path: the CSV (plain or compressed).
        max_trips: read only the first ``max_trips`` data rows (a cap; ``None`` reads all).
        block_size: bytes per pyarrow CSV block.

    Yields:
        ``trips``: columns trip_id, taxi_id, call_type, origin_call, origin_stand, day_type,
        missing_data, timestamps (int64 Unix s per point, 15 s apart), lon, lat (float64 degrees
        per point). ``rejections``: trip_id, row (1-based data row in the file), reason.

    Raises:
        InputFileError: the file is missing, empty (or has a header only), not UTF-8, truncated or
            corrupt (.xz/.gz/.bz2), has a wrong delimiter, lacks a column, or has a data row with
            the wrong field count; the message names the file, the data row where there is one
            (see :func:`locate_csv_problem`), and the problem. Problems inside a row's values
            (POLYLINE, TIMESTAMP) are not errors but counted rejections.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file not found")
    if path.is_dir():
        raise InputFileError(path, "is a folder, expected a Porto train.csv file")
    try:
        stream = open_maybe_compressed(path)
    except READ_ERRORS as exc:
        raise locate_csv_problem(path, exc, 0, PORTO_COLUMNS) from exc
    with stream, duckdb.connect() as con:
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=block_size),
                parse_options=pacsv.ParseOptions(newlines_in_values=False),
                convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in PORTO_COLUMNS}),
            )
        except READ_ERRORS as exc:
            raise locate_csv_problem(path, exc, 0, PORTO_COLUMNS) from exc
        problem = header_problem(reader.schema.names, PORTO_COLUMNS)
        if problem:
            raise InputFileError(path, problem, line=1)
        seen = 0
        while max_trips is None or seen < max_trips:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except READ_ERRORS as exc:
                raise locate_csv_problem(path, exc, seen, PORTO_COLUMNS) from exc
            block = pa.Table.from_batches([batch])
            if max_trips is not None and seen + block.num_rows > max_trips:
                block = block.slice(0, max_trips - seen)
            con.register("block", block)
            decoded = con.execute(_DECODE_SQL).df()
            con.unregister("block")
            rows = np.arange(seen + 1, seen + 1 + len(decoded))
            seen += len(decoded)
            reasons = [_reason(p, m, t) for p, m, t in
                       zip(decoded["points"], decoded["polyline_missing"], decoded["start_time"])]
            bad = np.array([r is not None for r in reasons], dtype=bool)
            rejections = pd.DataFrame({"trip_id": decoded["trip_id"][bad].astype(str).to_numpy(),
                                       "row": rows[bad],
                                       "reason": [r for r in reasons if r is not None]})
            good = decoded[~bad].reset_index(drop=True)
            lon, lat, times = [], [], []
            for pts, start in zip(good["points"], good["start_time"]):
                arr = _points_array(pts)
                lon.append(arr[:, 0])
                lat.append(arr[:, 1])
                times.append(int(start) + PORTO_SAMPLING_SECONDS * np.arange(len(arr), dtype=np.int64))
            trips = good.drop(columns=["points", "polyline_missing", "start_time"])
            trips["row"] = rows[~bad]
            trips["timestamps"] = times
            trips["lon"] = lon
            trips["lat"] = lat
            yield trips, rejections
    if seen == 0 and max_trips != 0:
        raise InputFileError(path, "no data rows: the file has a header only")
