"""Reader for the ECML/PKDD 2015 Porto taxi ``train.csv`` (Kaggle "Taxi Trajectory Prediction").

Columns: TRIP_ID, CALL_TYPE, ORIGIN_CALL, ORIGIN_STAND, TAXI_ID, TIMESTAMP (Unix s, UTC),
DAY_TYPE, MISSING_DATA, POLYLINE (JSON list of [lon, lat], one point every 15 s).
The file is streamed (plain, .gz, .bz2 or .xz) with pyarrow's CSV reader and each block's POLYLINE
is decoded with DuckDB, so the full 1.8 GB file is never loaded at once.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
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


def open_maybe_compressed(path: Path):
    """Open ``path`` for binary reading, decompressing .gz/.bz2/.xz by suffix."""
    suffix = path.suffix.lower()
    if suffix == ".xz":
        return lzma.open(path, "rb")
    if suffix == ".bz2":
        return bz2.open(path, "rb")
    if suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


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
        InputFileError: the file is missing, empty, not UTF-8, truncated, has a wrong delimiter
            or lacks a column; the message names the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file not found")
    try:
        stream = open_maybe_compressed(path)
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=block_size),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in PORTO_COLUMNS}),
        )
    except (pa.ArrowInvalid, OSError, EOFError, lzma.LZMAError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot read as CSV: {exc}") from exc
    missing = [c for c in PORTO_COLUMNS if c not in reader.schema.names]
    if missing:
        raise InputFileError(path, f"missing column(s) {missing}; header has {reader.schema.names} "
                                   "(wrong delimiter or not a Porto train.csv?)")
    con = duckdb.connect()
    seen = 0
    while max_trips is None or seen < max_trips:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, OSError, EOFError, lzma.LZMAError, UnicodeDecodeError) as exc:
            raise InputFileError(path, f"error after data row {seen}: {exc}") from exc
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
            arr = np.asarray([list(p) for p in pts], dtype=np.float64)
            lon.append(arr[:, 0])
            lat.append(arr[:, 1])
            times.append(int(start) + PORTO_SAMPLING_SECONDS * np.arange(len(arr), dtype=np.int64))
        trips = good.drop(columns=["points", "polyline_missing", "start_time"])
        trips["row"] = rows[~bad]
        trips["timestamps"] = times
        trips["lon"] = lon
        trips["lat"] = lat
        yield trips, rejections
