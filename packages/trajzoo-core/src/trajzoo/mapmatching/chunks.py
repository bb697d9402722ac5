"""Fan-out of map matching over N chunks of a city's trips, and the gather that rebuilds the stage.

The Snakemake rules (``workflow/rules/map_matching.smk``) use Snakemake's ``scattergather``: chunk
``i`` of ``N`` (scatter item ``"<i>-of-<N>"``, 1-based) is one job that reads only its own rows of
``trips.parquet`` (:func:`read_trip_rows`), loads the UBODT the ``build_ubodt`` rule cached, and
matches them (:func:`match_chunk`); :func:`gather_chunks` concatenates the chunks in order and
recounts the QC over the whole city. Each trip is matched independently of the others, so the
gathered tables are the ones :func:`trajzoo.mapmatching.fmm.match_trips` gives on all trips at
once, for every N.

Chunks are contiguous row ranges of ``trips.parquet`` with about the same number of GPS points
(:func:`chunk_row_ranges`), deterministic for a given file and N.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trajzoo.mapmatching.fmm import MatchParams, match_trips
from trajzoo.mapmatching.quality import quality_rows
from trajzoo.qc import AccountingError, stage_counts

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
    by the ``map_match`` rule next to the configured value.
    """
    ts = pq.read_table(trips_path, columns=["timestamps"]).column("timestamps").combine_chunks()
    values = ts.flatten().to_numpy().astype(np.float64)
    offsets = ts.offsets.to_numpy()
    steps = np.diff(values)
    inside = np.ones(len(steps), dtype=bool)  # drop the step from one trip's last fix to the next's first
    inside[offsets[1:-1][(offsets[1:-1] > 0) & (offsets[1:-1] < len(values))] - 1] = False
    steps = steps[inside]
    return float(np.quantile(steps, q)) if len(steps) else float("nan")


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


def match_chunk(trips_path: Path, segments: pd.DataFrame, crs: str, params: MatchParams, ubodt_dir: Path,
                chunk: int, n_chunks: int, workers: int = 1, progress: bool = True
                ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Map-match chunk ``chunk`` (0-based) of ``n_chunks`` of a trips.parquet.

    The UBODT must already be cached in ``ubodt_dir`` (the ``build_ubodt`` rule): a chunk never
    builds it (:class:`~trajzoo.mapmatching.fmm.UBODTMissingError`).

    Returns:
        ``(matched, stats, rejections)`` of the chunk's trips, as
        :func:`~trajzoo.mapmatching.fmm.match_trips` returns them.
    """
    start, stop = trip_chunk_range(trips_path, chunk, n_chunks)
    trips = read_trip_rows(trips_path, start, stop)
    return match_trips(trips, segments, crs, params, ubodt_dir, workers=workers, progress=progress,
                       require_ubodt=True)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    nonempty = [p for p in parts if len(p)]
    if not nonempty:
        return parts[0].reset_index(drop=True)
    return pd.concat(nonempty, ignore_index=True)


def gather_chunks(matched: list[pd.DataFrame], stats: list[pd.DataFrame], rejections: list[pd.DataFrame],
                  n_trips: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Concatenate the chunks' tables in chunk order and count the stage over the whole city.

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
        raise AccountingError(f"stage map_matching: the chunks hold {len(stats_all)} trip(s) "
                              f"({int(stats_all['trip_id'].duplicated().sum())} repeated), "
                              f"the trips table {n_trips}")
    qc = stage_counts("map_matching", n_trips, len(matched_all), rej_all["reason"])
    qc = pd.concat([qc, quality_rows(stats_all)], ignore_index=True)
    return matched_all, stats_all, rej_all, qc


def gather_chunk_files(matched: list[Path], stats: list[Path], rejections: list[Path], trips_path: Path
                       ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """:func:`gather_chunks` on the chunks' Parquet files (the gather rule's inputs, in chunk order)."""
    n_trips = pq.ParquetFile(trips_path).metadata.num_rows
    return gather_chunks([pd.read_parquet(p) for p in matched], [pd.read_parquet(p) for p in stats],
                         [pd.read_parquet(p) for p in rejections], n_trips)
