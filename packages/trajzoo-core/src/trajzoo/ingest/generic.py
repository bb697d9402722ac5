"""Reader ``fixes``: any CSV or Parquet table of GPS fixes, one row per fix, with configurable
column names, so that a new city is a config section only (``config/README.md``, "Adding a city").

The city's ``trajectories`` section names the columns::

    trajectories:
      format: fixes
      path: mycity/fixes.parquet          # .parquet, or .csv / .csv.gz / .csv.zst
      columns: {trip_id: trip, taxi_id: vehicle, timestamp: time, lon: lng, lat: lat,
                labels: {call_type: mode}}  # optional per-trip labels: output column -> source column
      timestamp_unit: s                   # s, ms, us, ns (epoch) or iso (ISO-8601 text; naive = UTC)

DuckDB reads the file (CSV types sniffed, Parquet as typed), groups the fixes by trip id, orders
each trip's fixes by time and hands the trips on in blocks of ``block_points`` fixes; the
table is never loaded into pandas whole. Trips come out in the order of their first fix in the
file (``row`` = that 1-based rank), so the output does not depend on how the fixes are shuffled.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np
import pandas as pd

from trajzoo.ingest.errors import InputFileError

#: Required keys of ``trajectories.columns``.
REQUIRED_COLUMNS = ("trip_id", "timestamp", "lon", "lat")
#: Divisor from the epoch unit to seconds.
EPOCH_DIVISOR = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
#: Reason of a trip with a timestamp that is missing or cannot be read in ``timestamp_unit``.
BAD_TIMESTAMP = "timestamp_not_parsed"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _source_sql(path: Path) -> str:
    """The DuckDB table function reading ``path``.

    Raises:
        InputFileError: a suffix DuckDB cannot read here (names the supported ones).
    """
    name = path.name.lower()
    lit = "'" + str(path).replace("'", "''") + "'"
    if name.endswith(".parquet") or name.endswith(".pq"):
        return f"read_parquet({lit})"
    if name.endswith((".csv", ".csv.gz", ".csv.zst", ".tsv", ".txt")):
        return f"read_csv({lit}, header = true)"
    raise InputFileError(path, "reader 'fixes' reads .parquet, .csv, .csv.gz or .csv.zst files "
                               "(convert other formats, e.g. with DuckDB or pandas)")


def _timestamp_sql(column: str, unit: str) -> str:
    """SQL giving int64 Unix seconds from the timestamp column (NULL where unreadable)."""
    col = _quote(column)
    if unit == "iso":
        return f"CAST(floor(epoch(TRY_CAST(CAST({col} AS VARCHAR) AS TIMESTAMP))) AS BIGINT)"
    if unit not in EPOCH_DIVISOR:
        raise ValueError(f"trajectories.timestamp_unit: {unit!r} is not one of {sorted(EPOCH_DIVISOR) + ['iso']}")
    return f"CAST(floor(TRY_CAST({col} AS DOUBLE) / {EPOCH_DIVISOR[unit]}) AS BIGINT)"


def read_fixes_trips(path: Path, columns: dict, timestamp_unit: str = "s", max_trips: int | None = None,
                     block_points: int = 1 << 21) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Stream a table of GPS fixes as ``(trips, rejections)`` blocks, one row per trip.

    Args:
        path: a Parquet or CSV file (see :func:`_source_sql`), one row per fix.
        columns: ``trip_id``, ``timestamp``, ``lon``, ``lat`` (source column names; required),
            ``taxi_id`` (optional; None: the trip id), ``labels`` (optional ``{output: source}``;
            each trip takes the value of its first fix; ``call_type`` feeds the CALL_TYPE task).
        timestamp_unit: ``s``, ``ms``, ``us``, ``ns`` (epoch numbers) or ``iso`` (text).
        max_trips: at most this many trips (the first by first appearance); None: all.
        block_points: block size hint: each block holds ``max(1, block_points // 2048)`` DuckDB
            vectors of 2,048 trips.

    Yields:
        ``trips``: trip_id (str), taxi_id (str), call_type (label or None), row (1-based rank of
        the trip's first fix), timestamps (int64 Unix s, sorted), lon, lat (float64 degrees; a
        missing coordinate is NaN and rejected later as ``invalid_coordinate``), then the other
        labels. ``rejections``: trip_id, row, reason (:data:`BAD_TIMESTAMP`).

    Raises:
        InputFileError: the file is missing, cannot be read, or lacks a configured column (names
            the file, the column and the columns it has).
        ValueError: ``columns`` lacks a required key; unknown ``timestamp_unit``.
    """
    path = Path(path)
    missing_keys = [k for k in REQUIRED_COLUMNS if not columns.get(k)]
    if missing_keys:
        raise ValueError(f"trajectories.columns needs {list(REQUIRED_COLUMNS)}; missing {missing_keys}")
    if not path.exists():
        raise InputFileError(path, "file not found")
    if path.is_dir():
        raise InputFileError(path, "is a folder, expected one CSV or Parquet file of GPS fixes")
    labels = dict(columns.get("labels") or {})
    source = _source_sql(path)
    with duckdb.connect() as con:
        try:
            have = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        except duckdb.Error as exc:
            raise InputFileError(path, f"cannot read as {'Parquet' if 'parquet' in source else 'CSV'}: {exc}") from exc
        wanted = {k: columns[k] for k in ("trip_id", "timestamp", "lon", "lat")}
        if columns.get("taxi_id"):
            wanted["taxi_id"] = columns["taxi_id"]
        wanted.update({f"label {k}": v for k, v in labels.items()})
        absent = {k: v for k, v in wanted.items() if v not in have}
        if absent:
            raise InputFileError(path, f"missing column(s) {sorted(set(absent.values()))} named by trajectories.columns "
                                       f"({', '.join(f'{k}={v!r}' for k, v in absent.items())}); the file has {have}")
        trip, ts = _quote(columns["trip_id"]), _timestamp_sql(columns["timestamp"], timestamp_unit)
        taxi = _quote(columns["taxi_id"]) if columns.get("taxi_id") else trip
        label_sql = "".join(f", first(CAST({_quote(src)} AS VARCHAR) ORDER BY fix_no) AS {_quote('label_' + out)}"
                            for out, src in labels.items())
        limit = f"WHERE trip_rank <= {int(max_trips)}" if max_trips is not None else ""
        sql = f"""
        WITH fixes AS (
            SELECT CAST({trip} AS VARCHAR) AS trip_id, CAST({taxi} AS VARCHAR) AS taxi_id, {ts} AS t,
                   {_quote(columns['timestamp'])} IS NULL AS t_null,
                   coalesce(TRY_CAST({_quote(columns['lon'])} AS DOUBLE), 'NaN'::DOUBLE) AS lon,
                   coalesce(TRY_CAST({_quote(columns['lat'])} AS DOUBLE), 'NaN'::DOUBLE) AS lat,
                   row_number() OVER () AS fix_no{''.join(f', {_quote(src)}' for src in labels.values())}
            FROM {source}
        ), trips AS (
            SELECT trip_id, first(taxi_id ORDER BY fix_no) AS taxi_id, min(fix_no) AS first_fix,
                   bool_or(t IS NULL) AS bad_time, count(*) AS n,
                   list(t ORDER BY t, fix_no) AS timestamps, list(lon ORDER BY t, fix_no) AS lon,
                   list(lat ORDER BY t, fix_no) AS lat{label_sql}
            FROM fixes GROUP BY trip_id
        ), ranked AS (
            SELECT *, row_number() OVER (ORDER BY first_fix) AS trip_rank FROM trips
        )
        SELECT * FROM ranked {limit} ORDER BY trip_rank
        """
        try:
            result = con.execute(sql)
        except duckdb.Error as exc:
            raise InputFileError(path, f"cannot read the fixes: {exc}") from exc
        n_read = 0
        while True:
            block = result.fetch_df_chunk(max(1, block_points // 2048))
            if not len(block):
                break
            n_read += len(block)
            yield _block(block, labels)
        if n_read == 0 and max_trips != 0:
            raise InputFileError(path, "no fixes: the file has no data rows")


def _block(block: pd.DataFrame, labels: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One DuckDB result chunk -> (trips, rejections) in the reader contract's columns."""
    bad = block["bad_time"].to_numpy(dtype=bool)
    rejections = pd.DataFrame({"trip_id": block.loc[bad, "trip_id"].astype(str).to_numpy(),
                               "row": block.loc[bad, "trip_rank"].to_numpy(dtype=np.int64),
                               "reason": [BAD_TIMESTAMP] * int(bad.sum())})
    good = block[~bad].reset_index(drop=True)
    trips = pd.DataFrame({
        "trip_id": good["trip_id"].astype(str),
        "taxi_id": good["taxi_id"].astype(str),
        "call_type": good["label_call_type"] if "call_type" in labels else None,
        "row": good["trip_rank"].to_numpy(dtype=np.int64),
        "timestamps": [np.asarray(t, dtype=np.int64) for t in good["timestamps"]],
        "lon": [np.asarray(x, dtype=np.float64) for x in good["lon"]],
        "lat": [np.asarray(x, dtype=np.float64) for x in good["lat"]],
    })
    for out in labels:
        if out != "call_type":
            trips[out] = good[f"label_{out}"].to_numpy()
    return trips, rejections


def read_fixes(request) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Reader ``fixes`` (a ``trajzoo.readers`` entry point): :func:`read_fixes_trips` with the
    ``columns`` and ``timestamp_unit`` of the city's ``trajectories`` section.

    Raises:
        ValueError: the section has no ``columns`` mapping (names the keys it needs).
    """
    src = request.source
    if not src.get("columns"):
        raise ValueError("trajectories.format 'fixes' needs trajectories.columns "
                         f"(at least {list(REQUIRED_COLUMNS)}, source column names)")
    yield from read_fixes_trips(request.path, src["columns"], src.get("timestamp_unit", "s"),
                                max_trips=request.max_trips, block_points=request.block_points)
