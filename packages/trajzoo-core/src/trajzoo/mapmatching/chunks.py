"""Fan-out of map matching over N chunks of a city's trips, and the gather that rebuilds the stage.

The Snakemake rules (``workflow/rules/map_matching.smk``) use Snakemake's ``scattergather``: chunk
``i`` of ``N`` (scatter item ``"<i>-of-<N>"``, 1-based) is one job that loads the UBODT the
``build_ubodt`` rule cached once, reads only its own rows of ``trips.parquet`` in batches of about
:data:`BATCH_POINTS` GPS fixes (:func:`iter_trip_batches`), matches each batch and appends its
tables to the chunk's Parquet files (:func:`match_chunk`); :func:`gather_chunk_files` streams the
chunks' row groups in order into the city's tables and counts the QC over the whole city on the
way (:class:`StageTally`). Each trip is matched independently of the others, so the gathered
tables are the ones :func:`trajzoo.mapmatching.fmm.match_trips` gives on all trips at once, for
every N and batch size; and no job holds more than a batch (chunk) or a row group (gather) of
them, whatever the size of the city (issue 14, "Full-size data").

Chunks are contiguous row ranges of ``trips.parquet`` with about the same number of GPS points
(:func:`chunk_row_ranges`), deterministic for a given file and N.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trajzoo.mapmatching.fmm import MatchParams, batch_to_tables, concat_batches, match_trips_prepared, prepare_matching
from trajzoo.mapmatching.quality import quality_rows
from trajzoo.qc import AccountingError, stage_counts_tallied

SCATTER_ITEM = re.compile(r"^([0-9]+)-of-([0-9]+)$")


def parse_scatter_item(item: str) -> tuple[int, int]:
    """``"2-of-4"`` (Snakemake's ``{scatteritem}``) -> ``(1, 4)``: 0-based chunk index and count.

    Raises:
        ValueError: not ``<i>-of-<N>`` with ``1 <= i <= N``.
    """
    m = SCATTER_ITEM.match(str(item))
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError(f"scatter item {item!r} is not '<i>-of-<N>' with 1 <= i <= N")
    return int(m.group(1)) - 1, int(m.group(2))


def chunk_row_ranges(n_points: np.ndarray, n_chunks: int) -> list[tuple[int, int]]:
    """Split trips into ``n_chunks`` contiguous row ranges with about equal GPS point counts.

    Args:
        n_points: ``(n_trips,)`` GPS points per trip, in file order.
        n_chunks: number of chunks (>= 1); chunks may be empty when there are fewer trips.

    Returns:
        ``n_chunks`` half-open ``(start, stop)`` row ranges that tile ``0..n_trips`` in order.

    Raises:
        ValueError: ``n_chunks < 1``.
    """
    if n_chunks < 1:
        raise ValueError(f"n_chunks must be >= 1, got {n_chunks}")
    cum = np.cumsum(np.asarray(n_points, dtype=np.int64))
    total = int(cum[-1]) if len(cum) else 0
    # chunk k starts at the first trip whose cumulative points pass k/N of the total
    cuts = [0] + [int(np.searchsorted(cum, total * k / n_chunks, side="right")) for k in range(1, n_chunks)] \
        + [len(cum)]
    cuts = np.maximum.accumulate(np.minimum(cuts, len(cum)))
    return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]


def trip_chunk_range(trips_path: Path, chunk: int, n_chunks: int) -> tuple[int, int]:
    """Row range of chunk ``chunk`` (0-based) of ``n_chunks`` of a trips.parquet (reads n_points only)."""
    n_points = pq.read_table(trips_path, columns=["n_points"]).column("n_points").to_numpy()
    return chunk_row_ranges(n_points, n_chunks)[chunk]


def interval_quantile(trips_path: Path, q: float = 0.9) -> float:
    """The ``q`` quantile (s) of the interval between consecutive fixes over every trip of a
    trips.parquet (reads the timestamps only); NaN when no trip has two fixes.

    The measured counterpart of a city's ``sampling_interval_s`` (the 90th percentile), logged
    by the ``map_match`` rule next to the configured value. Streamed: one row group's timestamps
    at a time, the intervals tallied by value (whole seconds: few distinct values), then
    ``np.quantile``'s default linear interpolation on the tally (the same value up to rounding).
    """
    pf = pq.ParquetFile(trips_path)
    tally: Counter = Counter()
    for g in range(pf.metadata.num_row_groups):
        ts = pf.read_row_group(g, columns=["timestamps"]).column("timestamps").combine_chunks()
        values = ts.flatten().to_numpy().astype(np.float64)
        offsets = ts.offsets.to_numpy()
        steps = np.diff(values)
        inside = np.ones(len(steps), dtype=bool)  # drop the step from one trip's last fix to the next's first
        inside[offsets[1:-1][(offsets[1:-1] > 0) & (offsets[1:-1] < len(values))] - 1] = False
        tally.update(dict(zip(*(a.tolist() for a in np.unique(steps[inside], return_counts=True)))))
    if not tally:
        return float("nan")
    values = np.array(sorted(tally), dtype=np.float64)
    ends = np.cumsum([tally[v] for v in values.tolist()])  # rank (exclusive) where each value ends
    h = q * (int(ends[-1]) - 1)
    lo = int(np.floor(h))
    a, b = (float(values[np.searchsorted(ends, r, side="right")]) for r in (lo, min(lo + 1, int(ends[-1]) - 1)))
    t = h - lo
    return a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t)


def read_trip_rows(trips_path: Path, start: int, stop: int) -> pd.DataFrame:
    """Rows ``start:stop`` of a trips.parquet, reading only the row groups that hold them.

    Memory: the overlapping row groups (ingest writes one per streamed block), not the file.
    Returns a DataFrame with a fresh RangeIndex, the same as ``pd.read_parquet(path)[start:stop]``.
    """
    pf = pq.ParquetFile(trips_path)
    tables, offset = [], 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        lo, hi = max(start - offset, 0), min(stop - offset, n)
        if lo < hi:
            tables.append(pf.read_row_group(g).slice(lo, hi - lo))
        offset += n
    table = pa.concat_tables(tables) if tables else pf.schema_arrow.empty_table()
    return table.to_pandas().reset_index(drop=True)


#: Default GPS fixes per batch of a chunk job (:func:`match_chunk`): the job's memory beyond the
#: matcher and one row group of trips.parquet grows with this, not with the chunk. About 2,000
#: Porto trips (49 fixes each) per batch.
BATCH_POINTS = 100_000


def iter_trip_batches(trips_path: Path, start: int, stop: int, batch_points: int = BATCH_POINTS
                      ) -> Iterator[pd.DataFrame]:
    """Rows ``start:stop`` of a trips.parquet in consecutive batches of about ``batch_points`` fixes.

    Reads one row group at a time (ingest writes one per streamed block) and cuts it into batches
    of whole trips holding at most ``batch_points`` GPS fixes each (a longer trip is a batch of
    its own). Concatenated, the batches are ``read_trip_rows(trips_path, start, stop)``.

    Args:
        trips_path: the city's trips.parquet (list column ``lon`` gives each trip's fix count).
        start, stop: half-open row range.
        batch_points: fixes per batch (>= 1).

    Yields:
        DataFrames with a fresh RangeIndex, in row order; none when ``start >= stop``.

    Raises:
        ValueError: ``batch_points < 1``.
    """
    if batch_points < 1:
        raise ValueError(f"batch_points must be >= 1, got {batch_points}")
    pf = pq.ParquetFile(trips_path)
    offset = 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        lo, hi = max(start - offset, 0), min(stop - offset, n)
        offset += n
        if lo >= hi:
            continue
        table = pf.read_row_group(g).slice(lo, hi - lo)
        sizes = pc.list_value_length(table.column("lon")).to_numpy(zero_copy_only=False)
        cum = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])  # fixes before each row
        a = 0
        while a < len(sizes):
            # the last row b such that rows a..b-1 hold at most batch_points fixes; at least one row
            b = max(int(np.searchsorted(cum, cum[a] + batch_points, side="right")) - 1, a + 1)
            yield table.slice(a, b - a).to_pandas().reset_index(drop=True)
            a = b
        del table


def chunk_output_schemas(trips_schema: pa.Schema) -> tuple[pa.Schema, pa.Schema, pa.Schema]:
    """Arrow schemas (with pandas metadata) of the ``(matched, stats, rejections)`` tables of a
    trips.parquet with ``trips_schema``, the same for every batch whatever its contents.

    They are the schemas pandas gives the tables of
    :func:`~trajzoo.mapmatching.fmm.batch_to_tables` when they hold rows: the trips' columns
    (``trip_id`` also in stats and rejections) with the dtypes pandas reads them with, the stats
    columns with their explicit dtypes, and ``roads`` / ``enter_times`` as ``list<int64>`` /
    ``list<double>`` (an empty table would give them no type to infer).
    """
    empty = trips_schema.empty_table().to_pandas()
    fixed = {"roads": pa.list_(pa.int64()), "enter_times": pa.list_(pa.float64())}
    out = []
    for df in batch_to_tables(empty, concat_batches([])):
        # the dtypes pandas gives these columns when they hold values: an empty list column is
        # float64 (object when filled), an empty trip_id built from an array object (str when filled)
        df = df.astype({c: object for c in fixed if c in df.columns}
                       | {c: empty[c].dtype for c in df.columns if c in empty.columns and df[c].dtype == object})
        inferred = pa.Schema.from_pandas(df, preserve_index=False)
        schema = pa.schema([pa.field(f.name, fixed.get(f.name, f.type)) for f in inferred])
        out.append(pa.Table.from_pandas(df, schema=schema, preserve_index=False).schema)
    return tuple(out)


def _to_arrow(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """A batch's table with ``schema`` (an empty table's list columns are float64 in pandas)."""
    return pa.Table.from_pandas(df, schema=schema, preserve_index=False) if len(df) else schema.empty_table()


class _Sink:
    """ParquetWriters for several output files, written to ``<name>.part`` and moved into place
    only when every file is complete (an error leaves no partial output)."""

    def __init__(self, paths: list[Path], schemas: list[pa.Schema]):
        self.paths = [Path(p) for p in paths]
        self.parts = [p.with_name(p.name + ".part") for p in self.paths]
        self.writers = [pq.ParquetWriter(part, schema) for part, schema in zip(self.parts, schemas)]

    def __enter__(self) -> list[pq.ParquetWriter]:
        return self.writers

    def __exit__(self, exc_type, exc, tb) -> None:
        for w in self.writers:
            w.close()
        for part, path in zip(self.parts, self.paths):
            if exc_type is None:
                os.replace(part, path)
            else:
                part.unlink(missing_ok=True)


def match_chunk(trips_path: Path, segments: pd.DataFrame, crs: str, params: MatchParams, ubodt_dir: Path,
                chunk: int, n_chunks: int, out_matched: Path, out_stats: Path, out_rejections: Path,
                workers: int = 1, progress: bool = True, batch_points: int = BATCH_POINTS) -> dict[str, int]:
    """Map-match chunk ``chunk`` (0-based) of ``n_chunks`` of a trips.parquet, streamed to Parquet.

    The matcher is made once (:func:`~trajzoo.mapmatching.fmm.prepare_matching`: the UBODT is
    loaded once per job); the chunk's trips are read and matched in batches of about
    ``batch_points`` GPS fixes (:func:`iter_trip_batches`), and each batch's three tables are
    appended as one row group to the output files (schemas of :func:`chunk_output_schemas`).
    Memory: the matcher, one row group of trips.parquet and one batch, not the chunk. The files
    hold the tables :func:`~trajzoo.mapmatching.fmm.match_trips` gives on the chunk's trips at
    once (each trip is matched independently of the others).

    The UBODT must already be cached in ``ubodt_dir`` (the ``build_ubodt`` rule): a chunk never
    builds it (:class:`~trajzoo.mapmatching.fmm.UBODTMissingError`).

    Args:
        out_matched, out_stats, out_rejections: the Parquet files written (replaced when complete).
        workers: worker processes per batch (forked per batch; they inherit the matcher).
        batch_points: GPS fixes per batch.

    Returns:
        ``{"trips", "kept", "rejected", "points", "batches"}``: trips of the chunk, kept and
        rejected trips, GPS fixes of its trips, batches matched.

    Raises:
        UBODTMissingError: no cached UBODT for the network and delta.
    """
    from tqdm import tqdm

    start, stop = trip_chunk_range(trips_path, chunk, n_chunks)
    setup = prepare_matching(segments, params, ubodt_dir, require_ubodt=True)
    schemas = chunk_output_schemas(pq.read_schema(trips_path))
    counts = {"trips": 0, "kept": 0, "rejected": 0, "points": 0, "batches": 0}
    bar = tqdm(total=stop - start, desc="map matching", unit="trip", disable=not progress, mininterval=5)
    with _Sink([out_matched, out_stats, out_rejections], list(schemas)) as writers:
        for trips in iter_trip_batches(trips_path, start, stop, batch_points):
            tables = match_trips_prepared(setup, trips, crs, workers=workers, progress=False)
            for writer, schema, df in zip(writers, schemas, tables):
                writer.write_table(_to_arrow(df, schema))
            counts["trips"] += len(trips)
            counts["kept"] += len(tables[0])
            counts["rejected"] += len(tables[2])
            counts["points"] += int(tables[1]["n_points"].sum())
            counts["batches"] += 1
            bar.update(len(trips))
            del trips, tables
    bar.close()
    return counts


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    nonempty = [p for p in parts if len(p)]
    if not nonempty:
        return parts[0].reset_index(drop=True)
    return pd.concat(nonempty, ignore_index=True)


class StageTally:
    """The map matching stage's QC counts, summed over pieces of its three tables (in any order).

    :meth:`table` gives what :func:`gather_chunks` returns as ``qc``: in / kept / rejected per
    reason (:func:`trajzoo.qc.stage_counts_tallied`), then the route-quality rows of
    :func:`trajzoo.mapmatching.quality.quality_rows`, each a sum over trips, so adding the pieces
    of a table one at a time gives the counts of the whole table.
    """

    def __init__(self) -> None:
        self.kept = 0
        self.rejected = 0
        self.reasons: Counter = Counter()
        self.quality: dict[str, int] = {}
        self.points = 0
        self.matched_points = 0

    def add_matched(self, n_rows: int) -> None:
        """Count ``n_rows`` kept trips (rows of the matched table)."""
        self.kept += int(n_rows)

    def add_rejections(self, reasons: pd.Series) -> None:
        """Count rejected trips, one reason each (a piece of the rejections table's column)."""
        self.rejected += int(len(reasons))
        self.reasons.update({k: int(v) for k, v in pd.Series(reasons, dtype=object).value_counts().items()})

    def add_stats(self, stats: pd.DataFrame) -> None:
        """Add a piece of the stats table (columns of :func:`quality_rows`, n_points, matched_points)."""
        for outcome, count in zip(*(quality_rows(stats)[c] for c in ("outcome", "count"))):
            self.quality[outcome] = self.quality.get(outcome, 0) + int(count)
        self.points += int(stats["n_points"].sum())
        self.matched_points += int(stats["matched_points"].sum())

    def table(self, n_trips: int) -> pd.DataFrame:
        """The stage's QC table (stage, outcome, count) with in = ``n_trips``.

        Raises:
            AccountingError: kept + rejected differs from ``n_trips``.
        """
        qc = stage_counts_tallied("map_matching", n_trips, self.kept, self.rejected, dict(self.reasons))
        quality = quality_rows(pd.DataFrame({c: pd.Series(dtype=t) for c, t in QUALITY_DTYPES.items()}))
        quality["count"] = [self.quality.get(o, 0) for o in quality["outcome"]]
        return pd.concat([qc, quality], ignore_index=True)


#: Columns (and dtypes) of the stats table that :func:`quality_rows` reads.
QUALITY_DTYPES = {"reason": "str", "n_revisited": "int64", "route_gps_ratio": "float64",
                  "n_stationary_dropped": "int64", "n_no_candidate": "int64"}


def _trips_accounting_error(held: int, repeated: int, n_trips: int, detail: str = "") -> AccountingError:
    return AccountingError(f"stage map_matching: the chunks hold {held} trip(s) ({repeated} repeated), "
                           f"the trips table {n_trips}{detail}")


def gather_chunks(matched: list[pd.DataFrame], stats: list[pd.DataFrame], rejections: list[pd.DataFrame],
                  n_trips: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Concatenate the chunks' tables in chunk order and count the stage over the whole city, in
    memory (the rule streams instead: :func:`gather_chunk_files`; the same QC, :class:`StageTally`).

    Args:
        matched, stats, rejections: one table per chunk, in chunk order (non-empty lists).
        n_trips: trips in the city's trips.parquet (the stage's input count).

    Returns:
        ``(matched, stats, rejections, qc)``; ``qc`` is :func:`trajzoo.qc.stage_counts` of stage
        ``map_matching`` with in = ``n_trips`` = kept + rejected, followed by the route-quality
        rows of :func:`trajzoo.mapmatching.quality.quality_rows` (revisiting trips, route / GPS
        ratio over 2, fixes collapsed at standstills, fixes with no candidate).

    Raises:
        AccountingError: the chunks' stats do not cover exactly ``n_trips`` trips (a chunk lost or
            repeated trips), or kept + rejected differs from ``n_trips``.
    """
    matched_all, stats_all, rej_all = _concat(matched), _concat(stats), _concat(rejections)
    if len(stats_all) != n_trips or stats_all["trip_id"].duplicated().any():
        raise _trips_accounting_error(len(stats_all), int(stats_all["trip_id"].duplicated().sum()), n_trips)
    tally = StageTally()
    tally.add_matched(len(matched_all))
    tally.add_rejections(rej_all["reason"])
    tally.add_stats(stats_all)
    return matched_all, stats_all, rej_all, tally.table(n_trips)


class _ColumnCursor:
    """Reads one column of a Parquet file forward, in pieces of any length (bounded memory)."""

    def __init__(self, path: Path, column: str, batch_size: int = 1 << 16):
        self._batches = pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=[column])
        self._buffer: pa.Array | None = None

    def take(self, n: int) -> pa.Array:
        """The next ``n`` values (fewer at the end of the file)."""
        parts = [self._buffer] if self._buffer is not None else []
        held = len(parts[0]) if parts else 0
        while held < n:
            batch = next(self._batches, None)
            if batch is None:
                break
            parts.append(batch.column(0))
            held += len(batch)
        if not parts:
            return pa.array([], pa.large_string())
        values = pa.concat_arrays(parts) if len(parts) > 1 else parts[0]
        self._buffer = values.slice(n)
        return values.slice(0, n)


def _order_error(stats: list[Path], trips_path: Path, n_trips: int) -> AccountingError:
    """The error for chunks whose trips are not the trips table's rows in order (read in full:
    an error path)."""
    held = pd.concat([pd.read_parquet(p, columns=["trip_id"])["trip_id"] for p in stats], ignore_index=True)
    repeated = int(held.duplicated().sum())
    if len(held) != n_trips or repeated:
        return _trips_accounting_error(len(held), repeated, n_trips)
    want = pd.read_parquet(trips_path, columns=["trip_id"])["trip_id"]
    row = int(np.flatnonzero(held.to_numpy() != want.to_numpy())[0])
    return _trips_accounting_error(len(held), 0, n_trips, f", not in its order: row {row} is {held[row]!r}, "
                                   f"the trips table's {want[row]!r}")


def _stream_tables(files: list[Path], writer: pq.ParquetWriter) -> Iterator[pa.Table]:
    """Append every row group of ``files`` (in order) to ``writer`` and yield it once written."""
    for path in files:
        pf = pq.ParquetFile(path)
        if not pf.schema_arrow.equals(writer.schema, check_metadata=False):
            raise ValueError(f"{path}: schema {pf.schema_arrow.remove_metadata()} differs from the first "
                             f"chunk's {writer.schema.remove_metadata()}")
        for g in range(pf.metadata.num_row_groups):
            table = pf.read_row_group(g)
            writer.write_table(table)
            yield table


def gather_chunk_files(matched: list[Path], stats: list[Path], rejections: list[Path], trips_path: Path,
                       out_matched: Path, out_stats: Path, out_rejections: Path) -> tuple[pd.DataFrame, StageTally]:
    """The gather rule: the chunks' Parquet files (in chunk order) streamed row group by row group
    into the city's three tables, and the stage's QC counted on the way (:class:`StageTally`).

    Memory: one row group of a chunk file (one batch of :func:`match_chunk`) and the trip ids of
    one trips.parquet read-ahead block, not the tables. The written files hold the rows of
    :func:`gather_chunks` on the same chunks, with the first chunk file's schema (pandas
    metadata included).

    Args:
        matched, stats, rejections: the chunks' files, in chunk order (non-empty lists).
        trips_path: the city's trips.parquet (the stage's input; its trip ids are compared with
            the stats tables' in order).
        out_matched, out_stats, out_rejections: the files written (replaced when complete; an
            error leaves none).

    Returns:
        ``(qc, tally)``: the QC table of :func:`gather_chunks` and the tally (GPS fixes in
        ``points``, fixes spanned by kept pieces in ``matched_points``).

    Raises:
        AccountingError: the chunks' stats are not the trips table's rows, each once and in order
            (a chunk lost, repeated or reordered trips), or kept + rejected differs from its rows.
        ValueError: a chunk file's schema differs from the first chunk's.
    """
    n_trips = pq.ParquetFile(trips_path).metadata.num_rows
    if sum(pq.ParquetFile(p).metadata.num_rows for p in stats) != n_trips:
        raise _order_error(stats, trips_path, n_trips)
    tally = StageTally()
    ids = _ColumnCursor(trips_path, "trip_id")
    schemas = [pq.read_schema(files[0]) for files in (matched, stats, rejections)]
    with _Sink([out_matched, out_stats, out_rejections], schemas) as (w_matched, w_stats, w_rej):
        for table in _stream_tables(stats, w_stats):
            got = table.column("trip_id").combine_chunks()
            want = ids.take(len(got))
            if len(want) != len(got) or not got.equals(want.cast(got.type)):
                raise _order_error(stats, trips_path, n_trips)
            tally.add_stats(table.select(list(QUALITY_DTYPES) + ["n_points", "matched_points"]).to_pandas())
        for table in _stream_tables(matched, w_matched):
            tally.add_matched(table.num_rows)
        for table in _stream_tables(rejections, w_rej):
            tally.add_rejections(table.column("reason").to_pandas())
        qc = tally.table(n_trips)
    return qc, tally
