"""Trajectory ingest: raw public GPS files -> one table of trips, plus counted rejections."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trajzoo.ingest.cabspotting import CABSPOTTING_YEARS, FIX_COUNT_KEYS, iter_cabspotting_blocks
from trajzoo.ingest.coverage import NetworkCoverage, network_coverage, read_network_coverage
from trajzoo.ingest.deeptte import DEEPTTE_YEARS, read_deeptte_trips
from trajzoo.ingest.errors import InputFileError
from trajzoo.ingest.filters import TripIds, filter_trips
from trajzoo.ingest.porto import BLOCK_BYTES as PORTO_BLOCK_BYTES
from trajzoo.ingest.porto import PORTO_YEARS, read_porto_trips
from trajzoo.qc import AccountingError, stage_counts

log = logging.getLogger(__name__)

TRIP_COLUMNS = ["trip_id", "taxi_id", "call_type", "start_time", "n_points", "timestamps", "lon", "lat"]
REJECTION_COLUMNS = ["trip_id", "row", "reason"]
#: Default streaming block size of Cabspotting: GPS points per block (Porto: ``PORTO_BLOCK_BYTES``,
#: :data:`trajzoo.ingest.porto.BLOCK_BYTES`, bytes of CSV per block).
CAB_BLOCK_POINTS = 1 << 21

#: QC outcome of each Cabspotting fix-level count (GPS fixes, not trips; see ``occupied_runs``).
FIX_OUTCOMES = {
    "fixes_in": "fixes_in",
    "duplicate_timestamp": "fixes_dropped:duplicate_timestamp",
    "invalid_occupancy": "fixes_dropped:invalid_occupancy",
    "out_of_order": "fixes_resorted:out_of_order",
}

#: Default of ``filters.network_buffer_m``: how far (m) from the nearest road segment a fix may lie.
NETWORK_BUFFER_M = 250.0
#: QC outcome counting the trips kept under a derived id (``<id>_2``; only present when there are any).
RENAMED_OUTCOME = "kept_renamed:duplicate_trip_id"

__all__ = ["ingest_city", "ingest_city_to_parquet", "iter_ingest_blocks", "city_coverage", "IngestTally",
           "InputFileError", "NetworkCoverage", "network_coverage", "TRIP_COLUMNS", "FIX_OUTCOMES",
           "REJECTION_COLUMNS", "NETWORK_BUFFER_M"]


def city_coverage(city: dict, segments_path: Path | None, data_root: Path | None = None) -> NetworkCoverage | None:
    """The usable area of a city for ingest: every point within ``network_buffer_m`` of a road
    (and, when the OSM extract declares its box, within that box grown by the same buffer).

    Args:
        city: the city's config block (``crs``; ``filters.network_buffer_m`` in metres, default
            :data:`NETWORK_BUFFER_M`; ``null`` turns the check off; ``osm.file``, whose declared
            ``<bounds>`` are used when ``data_root`` is given).
        segments_path: the city's ``roads/segments.parquet``, or None for a city without a road
            network (no check).
        data_root: root of the raw data (``osm.file`` is relative to it); None: no declared box.

    Returns:
        A :class:`~trajzoo.ingest.coverage.NetworkCoverage`, or None (no coverage check).
    """
    buffer_m = (city.get("filters") or {}).get("network_buffer_m", NETWORK_BUFFER_M)
    if segments_path is None or buffer_m is None:
        return None
    osm = city.get("osm") or {}
    osm_file = Path(data_root) / osm["file"] if data_root is not None and osm.get("file") else None
    return read_network_coverage(Path(segments_path), city["crs"], float(buffer_m), osm_file)


@dataclass
class IngestTally:
    """What :func:`iter_ingest_blocks` counted so far: kept trips, rejections, GPS fixes.

    Rejections are small (three short fields per rejected trip) and are kept in memory, parse
    rejections (the reader's) and filter rejections (:func:`filter_trips`) apart, so their final
    order -- every parse rejection in input order, then every filter rejection in input order -- is
    the same for every block size.
    """

    fmt: str
    n_kept: int = 0
    trip_ids: TripIds = field(default_factory=TripIds)
    parse_rejections: list = field(default_factory=list)
    filter_rejections: list = field(default_factory=list)
    fix_counts: dict = field(default_factory=lambda: dict.fromkeys(FIX_COUNT_KEYS, 0))
    #: What the reader counted itself: ``records_read`` (raw records seen, independently of the
    #: parse), ``members`` (Cabspotting folder/archive entries, read or skipped).
    reader_counts: dict = field(default_factory=dict)
    #: Records the reader gave (kept by the reader + rejected by it), summed over blocks.
    n_parsed: int = 0

    def rejections(self) -> pd.DataFrame:
        """All rejections: trip_id (str), row (Int64, 1-based data row, NA if none), reason."""
        parts = [r for r in self.parse_rejections + self.filter_rejections if len(r)]
        rej = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=REJECTION_COLUMNS)
        rej = rej[REJECTION_COLUMNS]
        rej["trip_id"] = rej["trip_id"].astype(str)
        rej["row"] = pd.array(rej["row"], dtype="Int64")
        return rej

    def qc(self, rejections: pd.DataFrame | None = None) -> pd.DataFrame:
        """The ingest QC table (see :func:`ingest_city`); raises AccountingError if trips were lost."""
        rejections = self.rejections() if rejections is None else rejections
        n_in = self.reader_counts.get("records_read")
        if n_in is None:  # a reader that does not count its raw records (Cabspotting: runs are derived)
            n_in = self.n_kept + len(rejections)
        elif n_in != self.n_parsed:
            raise AccountingError(f"stage ingest: the reader read {n_in} record(s) but gave {self.n_parsed} "
                                  "(kept + rejected by the reader)")
        qc = stage_counts("ingest", n_in, self.n_kept, rejections["reason"])
        if self.trip_ids.n_renamed:
            qc = pd.concat([qc, pd.DataFrame([{"stage": "ingest", "outcome": RENAMED_OUTCOME,
                                               "count": int(self.trip_ids.n_renamed)}])], ignore_index=True)
        if self.fmt == "cabspotting":
            fix_rows = pd.DataFrame([{"stage": "ingest", "outcome": outcome, "count": int(self.fix_counts[key])}
                                     for key, outcome in FIX_OUTCOMES.items()]
                                    + [{"stage": "ingest", "outcome": f"fixes_dropped:{key.split(':', 1)[1]}",
                                        "count": int(v)} for key, v in sorted(self.fix_counts.items())
                                       if key.startswith("implausible_time:") and v])
            qc = pd.concat([qc, fix_rows], ignore_index=True)
        members = self.reader_counts.get("members") or {}
        if any(k.startswith("skipped:") for k in members):
            # an entry of the folder or archive that is not a cab file: every entry is counted,
            # read (members_read) or skipped with its kind (members_skipped:<why>)
            rows = [{"stage": "ingest", "outcome": "members_read" if k == "cab_files" else f"members_{k}",
                     "count": int(v)} for k, v in sorted(members.items()) if k != "folders"]
            qc = pd.concat([qc, pd.DataFrame(rows)], ignore_index=True)
        return qc


#: ``filters.plausible_years`` when a city does not set it: the years of the dataset itself.
DEFAULT_PLAUSIBLE_YEARS = {"porto_csv": PORTO_YEARS, "cabspotting": CABSPOTTING_YEARS,
                           "deeptte_jsonl": DEEPTTE_YEARS}


def plausible_time_range(city: dict) -> tuple[int, int] | None:
    """The Unix seconds ``[start, end)`` a fix's time must lie in, from ``filters.plausible_years``
    (``[first, last]`` UTC years, inclusive; ``null`` turns the check off) or, when the key is
    absent, the years of the dataset (:data:`DEFAULT_PLAUSIBLE_YEARS`; None for other formats).

    Raises:
        ValueError: ``filters.plausible_years`` is not two years with first <= last.
    """
    flt = city.get("filters") or {}
    if "plausible_years" in flt:
        years = flt["plausible_years"]
    else:
        years = DEFAULT_PLAUSIBLE_YEARS.get((city.get("trajectories") or {}).get("format"))
    if years is None:
        return None
    if len(years) != 2 or not int(years[0]) <= int(years[1]):
        raise ValueError(f"filters.plausible_years must be [first, last] with first <= last, got {years}")
    start = int(datetime(int(years[0]), 1, 1, tzinfo=timezone.utc).timestamp())
    end = int(datetime(int(years[1]) + 1, 1, 1, tzinfo=timezone.utc).timestamp())
    return start, end


def release_memory() -> None:
    """Hand the memory freed by a finished block back to the OS: pyarrow's pool
    (``MemoryPool.release_unused``) and, with glibc, the free pages of the C heap (``malloc_trim``).

    Without it, freed block buffers stay resident as allocator free lists and the peak RSS of a
    streamed ingest creeps up with the input (about +60 MB over the 69 blocks of the Porto sample
    x100 in benchmarks/benchmark_streaming.py, flat with it). A no-op where glibc is absent.
    """
    pa.default_memory_pool().release_unused()
    global _LIBC
    if _LIBC is None:
        import ctypes
        import ctypes.util

        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim  # noqa: B018 (only glibc has it)
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None  # the C library once loaded (False: no malloc_trim)


def _finish_trips(trips: pd.DataFrame) -> pd.DataFrame:
    """Give one block of kept trips the output columns: :data:`TRIP_COLUMNS`, then source extras."""
    trips = trips.copy()
    trips["trip_id"] = trips["trip_id"].astype(str)
    trips["taxi_id"] = trips["taxi_id"].astype(str)
    trips["start_time"] = np.array([int(t[0]) for t in trips["timestamps"]], dtype=np.int64)
    trips["n_points"] = np.array([len(t) for t in trips["timestamps"]], dtype=np.int32)
    extra = [c for c in trips.columns if c not in TRIP_COLUMNS and c != "row"]
    return trips[TRIP_COLUMNS + extra]


@dataclass
class ReaderRequest:
    """What a trajectory reader (a ``trajzoo.readers`` entry point) is asked to read.

    A reader is ``reader(request) -> Iterator[(trips, parse_rejections)]``: blocks of kept trips
    (at least :data:`TRIP_COLUMNS` minus ``n_points``/``start_time`` as the readers give them,
    plus a 1-based ``row``) and of rejections (:data:`REJECTION_COLUMNS`), in input order.

    Attributes:
        path: the file or folder (``data_root / trajectories.path``).
        source: the city's ``trajectories`` config section (format-specific keys included).
        max_trips: read at most this many records (None = all).
        fix_counts: per-fix counts a reader may fill (Cabspotting), see :data:`FIX_OUTCOMES`.
        block_bytes: bytes of text per block, for readers that read in byte blocks.
        block_points: GPS fixes per block, for readers that read in fix blocks.
        counts: what the reader counts itself, filled by the time it is exhausted:
            ``records_read`` (raw records seen, counted independently of the parse; ingest
            checks it equals kept + rejected) and, for archives, ``members``.
    """

    path: Path
    source: dict
    max_trips: int | None
    fix_counts: dict
    block_bytes: int = PORTO_BLOCK_BYTES
    block_points: int = CAB_BLOCK_POINTS
    counts: dict = field(default_factory=dict)
    #: ``(start, end)`` Unix s of a plausible fix time (:func:`plausible_time_range`), or None;
    #: readers that cut fixes into trips (Cabspotting) drop implausible fixes before cutting.
    time_range: tuple[int, int] | None = None


def _source_blocks(city: dict, data_root: Path, tally: IngestTally, porto_block_bytes: int,
                   cab_block_points: int) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """The ``(trips, parse_rejections)`` blocks of the reader named by ``trajectories.format``,
    found through the ``trajzoo.readers`` entry points.

    Raises:
        ValueError: no installed reader of that name (listing the installed ones).
    """
    from trajzoo.registry import get_reader

    src = city["trajectories"]
    try:
        reader = get_reader(src["format"])
    except KeyError as exc:
        raise ValueError(f"unknown trajectory format {src['format']!r}: {exc.args[0]}") from None
    request = ReaderRequest(Path(data_root) / src["path"], src, city.get("caps", {}).get("max_trips"),
                            tally.fix_counts, porto_block_bytes, cab_block_points, tally.reader_counts,
                            plausible_time_range(city))
    yield from reader(request)


def read_porto_csv(request: ReaderRequest) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Reader ``porto_csv`` (ECML/PKDD 2015 train.csv): :func:`trajzoo.ingest.porto.read_porto_trips`."""
    yield from read_porto_trips(request.path, max_trips=request.max_trips, block_size=request.block_bytes,
                                counts=request.counts)


def read_cabspotting(request: ReaderRequest) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Reader ``cabspotting`` (the cabspottingdata folder or a tarball of it): occupied runs of
    :func:`trajzoo.ingest.cabspotting.iter_cabspotting_blocks` (``occupied_runs`` keys of the
    source section); fills ``request.fix_counts``."""
    occ = request.source.get("occupied_runs", {})
    yield from iter_cabspotting_blocks(
        request.path, max_gap_seconds=occ.get("max_gap_seconds", 300), min_fixes=occ.get("min_fixes", 5),
        max_trips=request.max_trips, fix_counts=request.fix_counts, block_points=request.block_points,
        members=request.counts.setdefault("members", {}), time_range=request.time_range)
    log.info("cabspotting fixes (read, dropped, re-sorted) before cutting runs: %s", request.fix_counts)


def read_deeptte_jsonl(request: ReaderRequest) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Reader ``deeptte_jsonl`` (DeepTTE Chengdu JSON lines): :func:`trajzoo.ingest.deeptte.read_deeptte_trips`."""
    yield from read_deeptte_trips(request.path, max_trips=request.max_trips, counts=request.counts)


def iter_ingest_blocks(city: dict, data_root: Path, tally: IngestTally | None = None,
                       porto_block_bytes: int = PORTO_BLOCK_BYTES, cab_block_points: int = CAB_BLOCK_POINTS,
                       coverage: NetworkCoverage | None = None) -> Iterator[pd.DataFrame]:
    """Stream a city's raw trajectories as blocks of kept trips (bounded memory).

    Memory holds a few reader blocks (``porto_block_bytes`` of CSV: the one being filtered and
    at most two read ahead, :class:`~trajzoo.ingest.porto.ReadGate`; or one cab file plus
    ``cab_block_points`` GPS points), 32 bytes per trip kept so far (id and trip digests, for
    repeated ids, see :class:`~trajzoo.ingest.filters.TripIds`) and the rejections; never the
    whole file. The concatenated blocks are the same table for every
    block size.

    Args:
        city, data_root: see :func:`ingest_city`.
        tally: receives the counts and rejections (read it once the generator is exhausted);
            ``IngestTally(city["trajectories"]["format"])`` if None.
        porto_block_bytes: bytes of (decompressed) CSV per Porto block.
        cab_block_points: GPS points per Cabspotting block.
        coverage: the area within a buffer of the road network (:func:`city_coverage`); a trip
            with a fix outside it is rejected ``outside_network``; with ``bbox`` None, its
            extent is the bounding box (swapped-coordinate check). None: no such check.

    Yields:
        Kept trips with :data:`TRIP_COLUMNS` (+ source extras), in input order; possibly empty.

    Raises:
        InputFileError, ValueError: see :func:`ingest_city`.
    """
    tally = IngestTally(city["trajectories"]["format"]) if tally is None else tally
    flt = city["filters"]
    bbox = city.get("bbox")
    if bbox is None and coverage is None:
        raise ValueError("a city needs a bbox or a road network (whose extent is the default bbox); "
                         f"this one ({city['trajectories']['path']}) has neither")
    kwargs = dict(bbox=bbox, min_points=flt["min_points"], max_points=flt["max_points"],
                  max_speed_mps=flt["max_speed_mps"], coverage=coverage,
                  time_range=plausible_time_range(city))
    for trips, parse_rej in _source_blocks(city, data_root, tally, porto_block_bytes, cab_block_points):
        tally.n_parsed += len(trips) + len(parse_rej)
        kept, rej = filter_trips(trips, seen_ids=tally.trip_ids, **kwargs)
        del trips
        tally.parse_rejections.append(parse_rej)
        tally.filter_rejections.append(rej)
        tally.n_kept += len(kept)
        out = [_finish_trips(kept)]
        del kept
        yield out.pop()  # held by the consumer only: freed once it is done with the block


def ingest_city(city: dict, data_root: Path, porto_block_bytes: int = PORTO_BLOCK_BYTES,
                cab_block_points: int = CAB_BLOCK_POINTS, coverage: NetworkCoverage | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read a city's raw trajectory source, filter it, and account for every trip (in memory).

    The whole-table form of :func:`iter_ingest_blocks`; the pipeline streams with
    :func:`ingest_city_to_parquet` instead.

    Args:
        city: the city's config block (``trajectories``, ``bbox`` (may be None when ``coverage``
            is given), ``filters``, ``caps``).
        data_root: root folder of the raw data; ``trajectories.path`` is relative to it.
        porto_block_bytes, cab_block_points: streaming block sizes (see :func:`iter_ingest_blocks`);
            the result does not depend on them.
        coverage: see :func:`iter_ingest_blocks` (reason ``outside_network``).

    Returns:
        ``(trips, rejections, qc)``. ``trips`` has :data:`TRIP_COLUMNS` (+ source columns such as
        origin_call for Porto): ``timestamps`` int64 Unix seconds, ``lon``/``lat`` float64
        degrees. ``rejections``: trip_id, row, reason. ``qc``: see :func:`trajzoo.qc.stage_counts`
        (stage ``ingest``; outcomes ``in``, ``kept``, ``rejected:<reason>`` count trips and
        in = kept + rejected; ``kept_renamed:duplicate_trip_id``, when present, counts the kept
        trips whose id repeated a kept trip's and that are kept as ``<id>_2``, ...). For Cabspotting, ``qc`` also has fix-level rows that count GPS
        fixes, not trips (:data:`FIX_OUTCOMES`): ``fixes_in``, ``fixes_dropped:duplicate_timestamp``,
        ``fixes_dropped:invalid_occupancy`` and ``fixes_resorted:out_of_order`` (always present,
        0 when nothing happened).

    Raises:
        InputFileError: unreadable source (names the file, row and problem).
        ValueError: unknown trajectory format; neither a bbox nor a coverage.
    """
    tally = IngestTally(city["trajectories"]["format"])
    parts = list(iter_ingest_blocks(city, data_root, tally, porto_block_bytes, cab_block_points, coverage))
    nonempty = [p for p in parts if len(p)]
    if nonempty:
        trips = pd.concat(nonempty, ignore_index=True)
    elif parts:
        trips = parts[0]
    else:
        trips = pd.DataFrame(columns=TRIP_COLUMNS)
    rejections = tally.rejections()
    return trips, rejections, tally.qc(rejections)


def ingest_city_to_parquet(city: dict, data_root: Path, trips_path: Path, rejections_path: Path,
                           porto_block_bytes: int = PORTO_BLOCK_BYTES, cab_block_points: int = CAB_BLOCK_POINTS,
                           coverage: NetworkCoverage | None = None) -> pd.DataFrame:
    """Stream a city's trips into ``trips_path`` block by block (one Parquet row group per block).

    Same table as ``ingest_city(...)[0].to_parquet(trips_path)`` (same columns, types and rows), with
    memory bounded by a few blocks (see :func:`iter_ingest_blocks`); each block's frames are
    dropped and their memory released (:func:`release_memory`) before the next is read. The
    Arrow schema is the first non-empty block's; later blocks are cast to it.

    Returns:
        The QC table (see :func:`ingest_city`); the rejections are written to ``rejections_path``.

    Raises:
        InputFileError, ValueError: see :func:`ingest_city`; ValueError also when a later block's
            columns cannot be cast to the first block's schema (names the column).
    """
    tally = IngestTally(city["trajectories"]["format"])
    writer, schema, first_empty = None, None, None
    try:
        for block in iter_ingest_blocks(city, data_root, tally, porto_block_bytes, cab_block_points, coverage):
            if not len(block):
                first_empty = block if first_empty is None else first_empty
                continue
            table = pa.Table.from_pandas(block, preserve_index=False)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(trips_path, schema)
            elif not table.schema.equals(schema, check_metadata=False):
                try:
                    table = table.cast(schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                    raise ValueError(f"ingest block does not fit the schema of the first block: {exc}") from exc
            writer.write_table(table)
            del table, block
            release_memory()
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # nothing kept: an empty table with the columns the reader gave
        empty = first_empty if first_empty is not None else pd.DataFrame(columns=TRIP_COLUMNS)
        empty.to_parquet(trips_path, index=False)
    rejections = tally.rejections()
    rejections.to_parquet(rejections_path, index=False)
    return tally.qc(rejections)
