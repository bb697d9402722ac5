"""Reader for the ECML/PKDD 2015 Porto taxi ``train.csv`` (Kaggle "Taxi Trajectory Prediction").

Columns: TRIP_ID, CALL_TYPE, ORIGIN_CALL, ORIGIN_STAND, TAXI_ID, TIMESTAMP (Unix s, UTC),
DAY_TYPE, MISSING_DATA, POLYLINE (JSON list of [lon, lat], one point every 15 s).
The file is streamed (plain, .gz, .bz2 or .xz) with pyarrow's CSV reader and each block's POLYLINE
is decoded with DuckDB, so the full 1.8 GB file is never loaded at once.
"""
from __future__ import annotations

import csv
import lzma
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from trajzoo.ingest.errors import InputFileError
from trajzoo.qc import AccountingError
from trajzoo.ingest.filetype import (DECOMPRESS_ERRORS, FileTypeError, describe, open_compressed, open_zip_member,
                                     sniff, strip_bom)

PORTO_COLUMNS = [
    "TRIP_ID", "CALL_TYPE", "ORIGIN_CALL", "ORIGIN_STAND", "TAXI_ID", "TIMESTAMP", "DAY_TYPE",
    "MISSING_DATA", "POLYLINE",
]
#: Seconds between two POLYLINE points (the challenge's sampling rate).
PORTO_SAMPLING_SECONDS = 15


#: Errors that reading (and decompressing) a CSV stream can raise; each becomes an InputFileError.
READ_ERRORS = (pa.ArrowException, OSError, EOFError, lzma.LZMAError, zlib.error, UnicodeDecodeError)
#: Plausible UTC years of the Porto data (July 2013 - June 2014), the default of ``filters.plausible_years``.
PORTO_YEARS = (2013, 2014)
#: Values of CALL_TYPE (A: dispatched by phone, B: at a stand, C: on the street).
CALL_TYPES = ("A", "B", "C")
#: Bytes of CSV per streamed block (4 MB: ~3,700 Porto trips; 16 MB blocks peaked at 1.5x the RSS
#: on the Porto sample x100 of benchmarks/benchmark_streaming.py, 531 against 361 MB).
BLOCK_BYTES = 1 << 22
#: Reads the CSV reader may make beyond the batches handed out (see :class:`ReadGate`).
READ_AHEAD_BLOCKS = 2
#: Seconds the consumer waits on a held-back read before it goes through (see :class:`ReadGate`).
GATE_GRACE_S = 1.0


def open_maybe_compressed(path: Path, zip_members: tuple[str, ...] = (".csv",)):
    """Open ``path`` for binary reading: decompressed by its magic bytes (every stream of a
    multi-stream .gz/.bz2/.xz, strictly: :func:`trajzoo.ingest.filetype.open_compressed`), or the
    one member ending in ``zip_members`` of a zip archive.

    Raises:
        FileTypeError: a compression suffix that does not match the content, a zip without exactly
            one such member.
    """
    path = Path(path)
    if sniff(path) == "zip":
        return open_zip_member(path, zip_members, "/".join(zip_members) or "data")[0]
    return open_compressed(path)


class LineCounter:
    """A binary stream that counts the non-blank lines passing through it (independently of the
    CSV parser that reads them), for the ingest accounting: data rows = lines - header.

    A blank line (empty, or a lone ``\\r``) is not counted, as pyarrow skips it.
    """

    def __init__(self, raw):
        self._raw = raw
        self.lines = 0
        self._partial = 0
        self._first = 0
        self.closed = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        chunk = self._raw.read(n)
        self._count(chunk)
        return chunk

    def _count(self, chunk: bytes) -> None:
        if not chunk:
            return
        arr = np.frombuffer(chunk, dtype=np.uint8)
        nl = np.flatnonzero(arr == 10)
        if not len(nl):
            if self._partial == 0:
                self._first = int(arr[0])
            self._partial += len(arr)
            return
        starts = np.concatenate([[0], nl[:-1] + 1])
        lens = nl - starts
        first = arr[starts].astype(np.int64)
        if self._partial:
            lens[0] += self._partial
            first[0] = self._first
        blank = (lens == 0) | ((lens == 1) & (first == 13))
        self.lines += int((~blank).sum())
        self._partial = len(arr) - int(nl[-1]) - 1
        if self._partial:
            self._first = int(arr[nl[-1] + 1])

    def total(self) -> int:
        """Non-blank lines read so far, a last line without a newline included."""
        last = self._partial > 0 and not (self._partial == 1 and self._first == 13)
        return self.lines + int(last)

    def close(self) -> None:
        self.closed = True
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ReadGate:
    """A binary stream that lets a reader in another thread read at most ``ahead`` blocks (one
    ``read`` call each) beyond the batches its consumer has taken, so the raw text held in memory
    is a few blocks whatever the file's size.

    pyarrow's streaming CSV reader (``pyarrow.csv.open_csv``) reads its input in an I/O thread up
    to 32 blocks ahead of the batches it has handed out (not configurable; checked with pyarrow
    26): with an ingest slower than reading, that is the whole file up to 32 x ``block_size``
    bytes (512 MB at 16 MB blocks), which made ingest's peak RSS grow with the input. The
    reader needs one read beyond the block of the batch it hands out (opening it: two reads), so
    ``ahead`` = 2 never holds it back from a batch it is asked for: one read per block, an empty
    batch for a block of blank lines, an error for a row longer than a block (checked on those).
    Should a reader need more, a read held back while the consumer has been waiting for
    :data:`GATE_GRACE_S` goes through (one per that many seconds of waiting): slower, never stuck.
    Such extra reads count, so later reads wait until the consumer catches up.

    The consumer calls :meth:`consumed` after taking each batch and makes every call into the
    reader (opening it, ``read_next_batch``) inside :meth:`waiting`. :meth:`close` releases a
    held-back read (the reader's thread is never left waiting).

    Args:
        raw: the binary stream to read.
        ahead: reads allowed beyond the batches consumed (>= 1).
    """

    def __init__(self, raw, ahead: int = READ_AHEAD_BLOCKS):
        self._raw = raw
        self._cond = threading.Condition()
        self._reads = 0
        self._allowed = int(ahead)
        self._waiting_since = None  # monotonic time the consumer started waiting, or of the last grant
        self.extra_reads = 0  # reads let through by the grace rule (0 for pyarrow 26)
        self.closed = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        with self._cond:
            while not (self.closed or self._reads < self._allowed):
                since = self._waiting_since
                if since is not None and time.monotonic() - since >= GATE_GRACE_S:
                    self._waiting_since = time.monotonic()
                    self.extra_reads += 1
                    break
                self._cond.wait(None if since is None else GATE_GRACE_S)
            self._reads += 1
        return self._raw.read(n)

    @contextmanager
    def waiting(self):
        """Context of a call that waits for the reader (see the class)."""
        with self._cond:
            self._waiting_since = time.monotonic()
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._waiting_since = None

    def consumed(self) -> None:
        """The consumer took one batch: one more read is allowed."""
        with self._cond:
            self._allowed += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
    kind = {".xz": ".xz", ".bz2": ".bz2", ".gz": ".gz"}.get(path.suffix.lower())
    line_no, data_row, n_fields = 0, 0, None
    try:
        with open_maybe_compressed(path) as f:
            for raw in f:
                line_no += 1
                if line_no == 1:
                    raw = strip_bom(raw)
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


#: Largest |TIMESTAMP| (s) the reader turns into point times without int64 overflow (~1.5e11 years).
MAX_ABS_TIMESTAMP = 1 << 62


def _sized(p) -> bool:
    """Whether a decoded POLYLINE element is a list (DuckDB gives a flat list's numbers as NULL /
    masked scalars, which have no length)."""
    if p is None:
        return False
    try:
        len(p)
    except TypeError:
        return False
    return True


def _blank(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) or not str(value).strip()


def _reason(row_points, polyline_missing: bool, start_time, trip_id=None, taxi_id=None, call_type="A") -> str | None:
    """The rejection reason of one decoded Porto row, or None (ids first, then POLYLINE, then TIMESTAMP)."""
    if _blank(trip_id):
        return "empty_trip_id"
    if _blank(taxi_id):
        return "empty_taxi_id"
    if call_type not in CALL_TYPES:
        return "invalid_call_type"
    if polyline_missing:
        return "empty_polyline"
    if row_points is None or row_points is pd.NA or (isinstance(row_points, float) and np.isnan(row_points)):
        return "polyline_not_json"
    if len(row_points) == 0:
        return "empty_polyline"
    if not any(_sized(p) for p in row_points):
        return "polyline_not_list_of_pairs"  # a flat list of numbers [lon, lat, lon, lat, ...]
    if any(not _sized(p) or len(p) != 2 for p in row_points):
        return "polyline_point_not_lon_lat_pair"
    if start_time is None or pd.isna(start_time):
        return "timestamp_not_integer"
    if abs(int(start_time)) > MAX_ABS_TIMESTAMP:
        return "timestamp_out_of_range"
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


def check_csv_kind(path: Path, what: str) -> None:
    """Refuse a file whose (decompressed) content is not CSV text, saying what it is.

    Raises:
        FileTypeError: e.g. ``<path>: is JSON text, expected <what>``; a compression suffix that
            does not match the content (see :func:`trajzoo.ingest.filetype.open_compressed`).
    """
    kind = sniff(path)
    if kind == "zip":
        return
    if kind in ("gzip", "bz2", "xz"):
        open_compressed(path).close()  # checks the suffix against the magic bytes
        inner = sniff(path, decompress=True)
        if inner not in ("csv", "text", "empty", "binary"):
            raise FileTypeError(path, f"is {describe(kind)} holding {describe(inner)}, expected {what}")
        return
    if kind not in ("csv", "text", "empty", "binary"):
        raise FileTypeError(path, f"is {describe(kind)}, expected {what}")
    open_compressed(path).close()  # a plain file named .xz/.gz/.bz2


#: The string columns a kept trip carries from the file, in the reader's output order.
_KEPT_TEXT = ["trip_id", "taxi_id", "call_type", "origin_call", "origin_stand", "day_type", "missing_data"]


def _decode_rows(con, block: pa.Table, rows: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decode rows of one block one by one (any content): ``(trips, rejections)`` as
    :func:`read_porto_trips` yields them; ``rows`` are their 1-based data rows."""
    con.register("block", block)
    decoded = con.execute(_DECODE_SQL).df()
    con.unregister("block")
    reasons = [_reason(*r) for r in zip(decoded["points"], decoded["polyline_missing"], decoded["start_time"],
                                        decoded["trip_id"], decoded["taxi_id"], decoded["call_type"])]
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
    return trips, rejections


def _clean_rows(dec: pa.Table) -> np.ndarray:
    """``(n,)`` bool: rows of a decoded block (``_DECODE_SQL`` as Arrow) that certainly pass every
    check of :func:`_reason`: ids holding an ASCII letter or digit (so not blank), CALL_TYPE A/B/C,
    a TIMESTAMP within :data:`MAX_ABS_TIMESTAMP`, and a POLYLINE of at least one pair, every pair
    two non-null numbers. Every other row is decoded by :func:`_decode_rows`."""
    n = dec.num_rows
    ok = np.ones(n, dtype=bool)
    for col in ("trip_id", "taxi_id"):
        ok &= pc.fill_null(pc.match_substring_regex(dec[col], "[0-9A-Za-z]"), False).to_numpy(zero_copy_only=False)
    ok &= pc.fill_null(pc.is_in(dec["call_type"], value_set=pa.array(CALL_TYPES)), False).to_numpy(zero_copy_only=False)
    ok &= ~pc.fill_null(dec["polyline_missing"], True).to_numpy(zero_copy_only=False)
    start = dec["start_time"]  # (no abs(): it wraps at the int64 minimum)
    in_range = pc.and_(pc.less_equal(start, MAX_ABS_TIMESTAMP), pc.greater_equal(start, -MAX_ABS_TIMESTAMP))
    ok &= pc.fill_null(in_range, False).to_numpy(zero_copy_only=False)
    points = dec["points"].combine_chunks()
    n_pairs = pc.fill_null(pc.list_value_length(points), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    valid = points.is_valid().to_numpy(zero_copy_only=False)
    ok &= valid & (n_pairs > 0)
    pairs = points.flatten()  # list<double>, one per pair of the valid rows
    pair_valid = pairs.is_valid().to_numpy(zero_copy_only=False)
    pair_len = pc.fill_null(pc.list_value_length(pairs), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    values_null = pc.is_null(pairs.flatten()).to_numpy(zero_copy_only=False)
    value_owner = np.repeat(np.arange(len(pair_len)), pair_len * pair_valid)
    null_in_pair = np.bincount(value_owner, weights=values_null, minlength=len(pair_len)) > 0
    good_pair = pair_valid & (pair_len == 2) & ~null_in_pair
    owner = np.repeat(np.arange(n), n_pairs * valid)
    bad_pairs = np.bincount(owner, weights=~good_pair, minlength=n)
    return ok & (bad_pairs == 0)


def decode_block(con, block: pa.Table, first_row: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decode one CSV block (all columns as strings) into ``(trips, rejections)`` (see
    :func:`read_porto_trips`), ``first_row`` being the block's first 1-based data row.

    DuckDB casts each POLYLINE to ``DOUBLE[][]`` once; the rows that are certainly clean
    (:func:`_clean_rows`, nearly all of a real file) become per-trip lon/lat/time arrays with
    vectorised Arrow/NumPy operations; the others are decoded row by row (:func:`_decode_rows`),
    so each row gets exactly the outcome and reason of the row-by-row decoder. Trips and
    rejections stay in input order.
    """
    con.register("block", block)
    dec = con.execute(_DECODE_SQL).arrow()
    if isinstance(dec, pa.RecordBatchReader):  # DuckDB >= 1.4 streams: read it while "block" is registered
        dec = dec.read_all()
    con.unregister("block")
    n = dec.num_rows
    rows = np.arange(first_row, first_row + n)
    clean = _clean_rows(dec) if n else np.zeros(0, dtype=bool)
    fast = dec.filter(pa.array(clean))
    points = fast["points"].combine_chunks()
    n_pts = pc.list_value_length(points).to_numpy(zero_copy_only=False).astype(np.int64)
    values = points.flatten().flatten().to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    lon, lat, times = [], [], []
    if len(n_pts):
        cuts = np.cumsum(n_pts)[:-1]
        lon = np.split(np.ascontiguousarray(values[0::2]), cuts)
        lat = np.split(np.ascontiguousarray(values[1::2]), cuts)
        start = fast["start_time"].to_numpy().astype(np.int64)
        step = np.arange(int(n_pts.sum()), dtype=np.int64) - np.repeat(np.concatenate([[0], cuts]), n_pts)
        times = np.split(np.repeat(start, n_pts) + PORTO_SAMPLING_SECONDS * step, cuts)
    trips = fast.select(_KEPT_TEXT).to_pandas()
    trips["row"] = rows[clean]
    trips["timestamps"] = times
    trips["lon"] = lon
    trips["lat"] = lat
    if clean.all():
        # the empty table of the row-by-row decoder (same dtypes)
        return trips, pd.DataFrame({"trip_id": np.zeros(0, dtype=object), "row": np.zeros(0, dtype=np.int64),
                                    "reason": []})
    slow_trips, rejections = _decode_rows(con, block.filter(pa.array(~clean)), rows[~clean])
    trips = pd.concat([trips, slow_trips], ignore_index=True).sort_values("row", kind="stable").reset_index(drop=True)
    return trips, rejections


def read_porto_trips(path: Path, max_trips: int | None = None, block_size: int = BLOCK_BYTES,
                     counts: dict | None = None) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Stream a Porto train.csv as ``(trips, rejections)`` blocks.

    Args:
        path: the CSV (plain or compressed).
        max_trips: read only the first ``max_trips`` data rows (a cap; ``None`` reads all).
        block_size: bytes per pyarrow CSV block.
        counts: filled with ``records_read`` (data rows read, counted from the file's own lines
            when it was read to the end) once the generator is exhausted.

    Yields:
        ``trips``: columns trip_id, taxi_id, call_type, origin_call, origin_stand, day_type,
        missing_data, timestamps (int64 Unix s per point, 15 s apart), lon, lat (float64 degrees
        per point). ``rejections``: trip_id, row (1-based data row in the file), reason.

    Raises:
        InputFileError: the file is missing, empty (or has a header only), not UTF-8, truncated or
            corrupt (.xz/.gz/.bz2), has a wrong delimiter, lacks a column, or has a data row with
            the wrong field count; the message names the file, the data row where there is one
            (see :func:`locate_csv_problem`), and the problem. Problems inside a row's values
            (ids, CALL_TYPE, POLYLINE, TIMESTAMP) are not errors but counted rejections.
        FileTypeError: the file is not CSV (JSON, XML, a tar archive, ...) or its compression
            suffix lies; the message says what it is.
        AccountingError: the file's non-blank lines and the parser's rows differ.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file not found")
    if path.is_dir():
        raise InputFileError(path, "is a folder, expected a Porto train.csv file")
    check_csv_kind(path, "a Porto train.csv (CSV text; plain, .gz, .bz2, .xz or a .zip holding it)")
    try:
        stream = LineCounter(open_maybe_compressed(path))
    except READ_ERRORS as exc:
        raise locate_csv_problem(path, exc, 0, PORTO_COLUMNS) from exc
    gate = ReadGate(stream)  # pyarrow reads it in a thread: at most READ_AHEAD_BLOCKS ahead
    capped = False
    with gate, stream, duckdb.connect() as con:
        try:
            with gate.waiting():
                reader = pacsv.open_csv(
                    gate,
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
                with gate.waiting():
                    batch = reader.read_next_batch()
            except StopIteration:
                break
            except READ_ERRORS as exc:
                raise locate_csv_problem(path, exc, seen, PORTO_COLUMNS) from exc
            gate.consumed()
            block = pa.Table.from_batches([batch])
            del batch
            if max_trips is not None and seen + block.num_rows >= max_trips:
                capped = True
                block = block.slice(0, max_trips - seen)
            out = [decode_block(con, block, seen + 1)]
            seen += block.num_rows
            del block
            yield out.pop()  # neither the CSV block nor its frames stay referenced here meanwhile
        if not capped:  # the whole file was read: its own line count must match the parser's rows
            lines = stream.total()
            if lines - 1 != seen:
                raise AccountingError(f"{path}: {lines - 1} non-blank data line(s) after the header but the CSV "
                                      f"reader gave {seen} row(s); rows were lost or merged (a quoted field "
                                      "spanning lines?)")
    if counts is not None:
        counts["records_read"] = seen
    if seen == 0 and max_trips != 0:
        raise InputFileError(path, "no data rows: the file has a header only")
