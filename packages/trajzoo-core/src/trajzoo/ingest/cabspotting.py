"""Reader for Cabspotting (CRAWDAD epfl/mobility) San Francisco taxi GPS.

Original layout: ``cabspottingdata/new_<cab>.txt``, one fix per line ``lat lon occupancy unix_time``
(space separated, newest first). Accepted as the folder or as a .tar/.tar.gz/.tar.xz of it.
Each cab's fixes are sorted by time and cut into occupied runs (occupancy = 1), split where two
consecutive fixes are more than ``max_gap_seconds`` apart; each run is a trip.

Messy files: a repeated timestamp, an occupancy other than 0/1 and a file not in newest-first
order are not errors; they are counted per fix (see :func:`occupied_runs`) and reported in the
ingest QC table. A line that is not ``lat lon occupancy unix_time``, a non-UTF-8 byte, an empty or
truncated archive are errors (:class:`InputFileError` naming the file and the line).
"""
from __future__ import annotations

import io
import logging
import lzma
import pickle
import re
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from trajzoo.ingest.errors import InputFileError
from trajzoo.ingest.filetype import decompress_bytes, open_tar_stream, strip_bom
from trajzoo.qc import AccountingError

log = logging.getLogger(__name__)

#: A cab file: ``new_<cab>.txt`` (any case), optionally compressed (.gz, .bz2, .xz).
CAB_FILE = re.compile(r"(?:^|/)new_([^/]+)\.txt(?:\.(?:gz|bz2|xz))?$", re.IGNORECASE)
#: Plausible UTC years of the Cabspotting data (May-June 2008), the default of ``filters.plausible_years``.
CABSPOTTING_YEARS = (2008, 2008)


def _skip(members: dict, why: str, name: str) -> None:
    members[f"skipped:{why}"] = members.get(f"skipped:{why}", 0) + 1
    log.info("cabspotting: not a cab file, skipped (%s): %s", why, name)


def _folder_entries(path: Path, members: dict) -> list[tuple[str, Path, str]]:
    """``(cab, file, display name)`` of every cab file of a folder tree; every other entry is
    counted in ``members`` (``skipped:<why>``).

    Symbolic links are followed when they point outside the tree (to a file or folder) and
    skipped (``skipped:link_into_folder``) when they point at something inside it, which is read
    under its own name.

    Raises:
        InputFileError: naming the entry: a symbolic link loop, a dangling link, a folder named
            like a cab file, an entry that cannot be listed or read.
    """
    root = path.resolve()
    found: list[tuple[str, Path, str]] = []
    stack = [path]
    seen_dirs = {root}
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError as exc:
            raise InputFileError(folder, f"cannot list this folder: {exc.strerror or exc}") from exc
        for entry in entries:
            rel = entry.relative_to(path).as_posix()
            target = entry
            if entry.is_symlink():
                try:
                    target = entry.resolve(strict=True)
                except RuntimeError as exc:  # Python < 3.13: symlink loop
                    raise InputFileError(entry, "symbolic link loop (the link points back at itself)") from exc
                except FileNotFoundError as exc:
                    raise InputFileError(entry, f"dangling symbolic link to {entry.readlink()} "
                                                "(its target does not exist)") from exc
                except OSError as exc:
                    why = "symbolic link loop" if exc.errno == 40 else f"unreadable symbolic link ({exc.strerror})"
                    raise InputFileError(entry, why) from exc
                if target == root or root in target.parents:
                    _skip(members, "link_into_folder", rel)
                    continue
            match = CAB_FILE.search(rel)
            if target.is_dir():
                if match:
                    raise InputFileError(entry, "is a folder named like a cab file (expected a file new_<cab>.txt)")
                if target not in seen_dirs:
                    seen_dirs.add(target)
                    stack.append(entry)
                    members["folders"] = members.get("folders", 0) + 1
                continue
            if not target.is_file():
                _skip(members, "not_a_regular_file", rel)
                continue
            if not match:
                _skip(members, "not_a_cab_file", rel)
                continue
            found.append((match.group(1), entry, str(entry)))
    return sorted(found, key=lambda t: (t[0], str(t[1])))


def iter_cab_files(path: Path, members: dict | None = None) -> Iterator[tuple[str, str, bytes]]:
    """Yield ``(cab_id, display_name, raw_bytes)`` for every cab file, one file at a time.

    A cab file is ``new_<cab>.txt`` (any case; .gz/.bz2/.xz compressed ones are decompressed).
    A folder is read in cab-id order (then path), an archive in archive order (one streaming pass
    over the compressed data, no seeking back; every compressed stream is decoded, strictly).
    Only one cab file's bytes are held at a time.

    Args:
        path: the cabspottingdata folder, or a .tar/.tar.gz/.tar.bz2/.tar.xz of it.
        members: updated in place: ``cab_files`` (read), ``folders``, and ``skipped:<why>`` for
            every other entry (``not_a_cab_file``, ``link_into_folder``, ``not_a_regular_file``,
            ``link`` for a symbolic or hard link inside an archive), so every entry is counted.

    Raises:
        InputFileError: path missing, an empty archive file, an unreadable (truncated or corrupt)
            archive, an unreadable entry (symbolic link loop, dangling link, a folder named like a
            cab file; naming the entry), or no cab file found.
        FileTypeError: the file is not a tar archive (a zip, CSV text, ...): says what it is.
    """
    path = Path(path)
    members = {} if members is None else members
    members.setdefault("cab_files", 0)
    if not path.exists() and not path.is_symlink():
        raise InputFileError(path, "file or folder not found")
    found = 0
    if path.is_dir():
        for cab, f, name in _folder_entries(path, members):
            try:
                raw = f.read_bytes()
            except OSError as exc:
                raise InputFileError(f, f"cannot read this cab file: {exc.strerror or exc}") from exc
            found += 1
            members["cab_files"] += 1
            yield cab, name, decompress_bytes(raw, name)
    else:
        if path.stat().st_size == 0:
            raise InputFileError(path, "empty file: expected a tar archive of cabspottingdata/")
        last, raw = None, None

        def broken(exc: BaseException) -> InputFileError:
            after = f" after {found} complete cab file(s), the last {last}" if found else ""
            return InputFileError(path, f"truncated or corrupt archive{after}: {exc}")

        try:
            tar, raw = open_tar_stream(path)  # FileTypeError: a zip, a CSV, ... named what it is
            with tar:
                for m in tar:
                    match = CAB_FILE.search(m.name)
                    if m.isdir():
                        if match:
                            raise InputFileError(f"{path}:{m.name}", "is a folder named like a cab file "
                                                                     "(expected a file new_<cab>.txt)")
                        members["folders"] = members.get("folders", 0) + 1
                    elif m.issym() or m.islnk():
                        _skip(members, "link", f"{m.name} -> {m.linkname}")
                    elif not m.isfile():
                        _skip(members, "not_a_regular_file", m.name)
                    elif not match:
                        _skip(members, "not_a_cab_file", m.name)
                    else:
                        name = f"{path}:{m.name}"
                        data = tar.extractfile(m).read()
                        if raw is not None and raw.error is not None:
                            raise broken(raw.error)
                        raw_bytes = decompress_bytes(data, name)
                        found += 1
                        members["cab_files"] += 1
                        last = m.name
                        yield match.group(1), name, raw_bytes
        except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error) as exc:
            raise broken(raw.error if raw is not None and raw.error is not None else exc) from exc
        if raw is not None and raw.error is not None:
            raise broken(raw.error)
    if found == 0:
        raise InputFileError(path, f"no cabspottingdata/new_<cab>.txt file found (entries: {members})")


def _locate_cab_problem(raw: str, name: str, exc: BaseException) -> InputFileError:
    """Find the first line of a cab file that is not ``lat lon occupancy unix_time``."""
    for line_no, line in enumerate(raw.splitlines(), start=1):
        if not line:
            continue  # pyarrow skips empty lines
        fields = line.split(" ")
        if len(fields) != 4:
            return InputFileError(name, f"wrong field count: expected 4 space-separated fields "
                                        f"'lat lon occupancy unix_time', found {len(fields)}", row=line_no)
        for value, typ, col in zip(fields, (float, float, int, int), ("lat", "lon", "occupancy", "unix_time")):
            try:
                number = typ(value)
            except ValueError:
                return InputFileError(name, f"{col} {value!r} is not a number of the expected type "
                                            f"({'integer' if typ is int else 'decimal'})", row=line_no)
            if typ is int and not -(1 << 63) <= number < (1 << 63):
                return InputFileError(name, f"{col} {value!r} is too large for a 64-bit integer", row=line_no)
    return InputFileError(name, f"not 'lat lon occupancy unix_time': {exc}")


def parse_cab_file(raw: bytes, name: str) -> pd.DataFrame:
    """Parse one cab file into columns lat, lon (degrees), occupancy (int), time (Unix s).

    An empty file gives an empty table (a cab with no fix in the period). Rows are lines (the
    file has no header): ``row`` in errors is the 1-based line number.

    Raises:
        InputFileError: wrong field count, a non-numeric value, or non-UTF-8 bytes, naming
            the file and the row.
    """
    if not raw.strip():  # the mirrored sample has cabs with no fix in its window
        return pd.DataFrame({"lat": pd.Series(dtype="float64"), "lon": pd.Series(dtype="float64"),
                             "occupancy": pd.Series(dtype="int64"), "time": pd.Series(dtype="int64")})
    raw = strip_bom(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        row = raw[: exc.start].count(b"\n") + 1
        raise InputFileError(name, f"byte {raw[exc.start]:#x} is not UTF-8", row=row) from exc
    try:
        table = pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(column_names=["lat", "lon", "occupancy", "time"]),
            parse_options=pacsv.ParseOptions(delimiter=" "),
            convert_options=pacsv.ConvertOptions(column_types={
                "lat": pa.float64(), "lon": pa.float64(), "occupancy": pa.int64(), "time": pa.int64()}),
        )
    except pa.ArrowInvalid as exc:
        # pyarrow names no row: find it with a line scan (error path only, one cab file)
        raise _locate_cab_problem(text, name, exc) from exc
    lines = sum(1 for line in text.splitlines() if line.strip("\r"))  # the file's own count of fixes
    if lines != table.num_rows:
        raise AccountingError(f"{name}: {lines} non-blank line(s) but the reader parsed {table.num_rows} fix(es)")
    return table.to_pandas()


#: Fix-level counts returned by :func:`occupied_runs` (GPS fixes, not trips).
FIX_COUNT_KEYS = ("fixes_in", "duplicate_timestamp", "invalid_occupancy", "out_of_order")


#: Reasons for dropping a fix whose time is implausible (see :func:`implausible_time_reasons`).
TIME_REASONS = ("negative_time", "time_in_milliseconds", "time_outside_plausible_years")


def implausible_time_reasons(t: np.ndarray, time_range: tuple[int, int]) -> np.ndarray:
    """Per fix: None for a time in ``[start, end)`` Unix s, else ``negative_time``,
    ``time_in_milliseconds`` (t / 1000 lies in the range) or ``time_outside_plausible_years``."""
    t = np.asarray(t, dtype=np.int64)
    out = np.full(len(t), None, dtype=object)
    bad = (t < time_range[0]) | (t >= time_range[1])
    ms = (t // 1000 >= time_range[0]) & (t // 1000 < time_range[1])
    out[bad] = "time_outside_plausible_years"
    out[bad & ms] = "time_in_milliseconds"
    out[bad & (t < 0)] = "negative_time"
    return out


def occupied_runs(fixes: pd.DataFrame, cab: str, max_gap_seconds: int, min_fixes: int,
                  time_range: tuple[int, int] | None = None) -> tuple[list[dict], list[dict], dict]:
    """Cut one cab's fixes into occupied runs.

    The file order is not trusted: fixes are sorted by time (stable). Of several fixes with the
    same timestamp the first in the given order is kept and the others are dropped
    (``duplicate_timestamp``). A fix whose occupancy is neither 0 nor 1 is dropped
    (``invalid_occupancy``): it belongs to no run and, its state being unknown, ends the occupied
    run it interrupts.

    Args:
        fixes: columns lat, lon, occupancy, time, in file order (Cabspotting files are newest
            first).
        cab: cab id, used in trip ids ``<cab>_<first unix time>``.
        max_gap_seconds: a gap longer than this (s) between consecutive occupied fixes splits a run.
        min_fixes: runs with fewer fixes are rejected (reason ``too_few_fixes``).
        time_range: ``(start, end)`` Unix s (see :func:`trajzoo.ingest.plausible_time_range`): a
            fix outside is dropped before runs are cut and counted ``implausible_time:<reason>``
            (:data:`TIME_REASONS`; a file in milliseconds would otherwise be cut into one-fix
            runs and reported as ``too_few_fixes``). None: no check.

    Returns:
        ``(trips, rejections, fix_counts)``: trip dicts (trip_id, taxi_id, timestamps, lon, lat),
        rejection dicts (trip_id, row, reason) and fix-level counts (:data:`FIX_COUNT_KEYS`):
        ``fixes_in`` fixes read, ``duplicate_timestamp`` and ``invalid_occupancy`` fixes dropped,
        ``out_of_order`` fixes whose time is later than the previous line's in a newest-first
        file (kept: sorting puts them in place).
    """
    counts = dict.fromkeys(FIX_COUNT_KEYS, 0)
    counts["fixes_in"] = len(fixes)
    counts["out_of_order"] = int((np.diff(fixes["time"].to_numpy()) > 0).sum())
    n_implausible = 0
    if time_range is not None and len(fixes):
        why = implausible_time_reasons(fixes["time"].to_numpy(), time_range)
        for reason in TIME_REASONS:
            n = int((why == reason).sum())
            if n:
                counts[f"implausible_time:{reason}"] = n
                n_implausible += n
        fixes = fixes[pd.isna(why)] if n_implausible else fixes
    fixes = fixes.sort_values("time", kind="stable")
    dup = fixes["time"].duplicated(keep="first").to_numpy()
    counts["duplicate_timestamp"] = int(dup.sum())
    fixes = fixes[~dup]
    occ = fixes["occupancy"].to_numpy()
    invalid = ~np.isin(occ, (0, 1))
    counts["invalid_occupancy"] = int(invalid.sum())
    t = fixes["time"].to_numpy()
    occupied = occ == 1  # an invalid occupancy is not 1: it ends the run like a 0 would
    # a run breaks where occupancy is not 1, or where the gap to the previous fix is too long
    new_run = np.ones(len(t), dtype=bool)
    new_run[1:] = ~occupied[:-1] | (np.diff(t) > max_gap_seconds)
    run_id = np.cumsum(new_run)
    trips, rejections = [], []
    lat, lon = fixes["lat"].to_numpy(), fixes["lon"].to_numpy()
    short_fixes = 0
    for rid in np.unique(run_id[occupied]):
        idx = np.flatnonzero((run_id == rid) & occupied)
        trip_id = f"{cab}_{int(t[idx[0]])}"
        if len(idx) < min_fixes:
            short_fixes += len(idx)
            rejections.append({"trip_id": trip_id, "taxi_id": cab, "start": int(t[idx[0]]), "row": None,
                               "reason": "too_few_fixes"})
            continue
        trips.append({"trip_id": trip_id, "taxi_id": cab, "start": int(t[idx[0]]),
                      "timestamps": t[idx].astype(np.int64),
                      "lon": lon[idx].astype(np.float64), "lat": lat[idx].astype(np.float64)})
    # every fix read is in a run, a free (occupancy 0) fix, or dropped: checked, not assumed
    in_runs = sum(len(r["timestamps"]) for r in trips) + short_fixes
    free = int((occ == 0).sum())
    dropped = counts["duplicate_timestamp"] + counts["invalid_occupancy"] + n_implausible
    if in_runs + free + dropped != counts["fixes_in"]:
        raise AccountingError(f"cab {cab}: {counts['fixes_in']} fixes read != {in_runs} in runs + {free} free "
                              f"+ {dropped} dropped")
    return trips, rejections, counts


def _runs_by_cab(path: Path, max_gap_seconds: int, min_fixes: int, fix_counts: dict,
                spill_dir: Path, members: dict | None = None, time_range: tuple[int, int] | None = None
                ) -> Iterator[list[dict]]:
    """Yield each cab's runs (trips and ``too_few_fixes`` rejections), cabs in ascending id order,
    a cab's runs in start order.

    A folder is read in cab-id order directly. An archive cannot be read out of order, so each cab's
    runs are pickled to ``spill_dir`` on the way (one file per cab file) and read back in cab-id
    order: memory holds one cab at a time, disk holds about the size of the trips. Several files
    of the same cab id (in different sub-folders) are merged by start time.
    """
    pending: list[dict] = []
    pending_cab = None
    spilled: dict[str, list[Path]] = {}
    n_spilled = 0
    in_order = Path(path).is_dir()
    for cab, name, raw in iter_cab_files(Path(path), members):
        cab_trips, cab_rej, counts = occupied_runs(parse_cab_file(raw, name), cab, max_gap_seconds, min_fixes,
                                                   time_range)
        del raw
        for k, v in counts.items():
            fix_counts[k] = fix_counts.get(k, 0) + v
        runs = cab_trips + cab_rej
        if in_order:
            if cab != pending_cab and pending_cab is not None:
                pending.sort(key=lambda d: d["start"])  # stable: within a start, file order
                yield pending
                pending = []
            pending_cab = cab
            pending += runs
        else:
            spill = Path(spill_dir) / f"cab{n_spilled:07d}.pkl"
            n_spilled += 1
            with open(spill, "wb") as f:
                pickle.dump(runs, f, protocol=pickle.HIGHEST_PROTOCOL)
            spilled.setdefault(cab, []).append(spill)
    if in_order:
        if pending_cab is not None:
            pending.sort(key=lambda d: d["start"])
            yield pending
        return
    for cab in sorted(spilled):
        runs = []
        for spill in spilled[cab]:
            with open(spill, "rb") as f:
                runs += pickle.load(f)
            spill.unlink()
        runs.sort(key=lambda d: d["start"])
        yield runs


def _cab_block(runs: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    trips = [r for r in runs if "timestamps" in r]
    rejections = [r for r in runs if "timestamps" not in r]
    trips_df = pd.DataFrame(trips, columns=["trip_id", "taxi_id", "timestamps", "lon", "lat"])
    trips_df["call_type"] = None
    rej_df = pd.DataFrame(rejections, columns=["trip_id", "row", "reason"])
    return trips_df, rej_df


def iter_cabspotting_blocks(path: Path, max_gap_seconds: int = 300, min_fixes: int = 5,
                            max_trips: int | None = None, fix_counts: dict | None = None,
                            block_points: int = 1 << 21, members: dict | None = None,
                            time_range: tuple[int, int] | None = None
                            ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Stream the occupied runs of a cabspottingdata folder or archive as ``(trips, rejections)`` blocks.

    Bounded memory: one cab file (its bytes and fixes) plus one block of runs at a time, whatever
    the number of cabs. Runs come ordered by cab id, then start time, whatever the archive order
    (see :func:`_runs_by_cab`), so the concatenated blocks are the same table for every
    ``block_points``.

    Args:
        path: the ``cabspottingdata`` folder or a .tar/.tar.gz/.tar.xz of it.
        max_gap_seconds, min_fixes: see :func:`occupied_runs`.
        max_trips: cap on the number of runs (trips + ``too_few_fixes`` rejections) taken in that
            order; runs past the cap appear in no block (their fixes are still counted).
        fix_counts: a dict updated in place with the fix-level counts (:data:`FIX_COUNT_KEYS`) of
            every fix read, also those of runs past the cap; complete once the generator is
            exhausted.
        block_points: a block is emitted once its trips hold at least this many GPS points.
        members: updated in place with the count of every folder/archive entry, read or skipped
            (see :func:`iter_cab_files`).
        time_range: fixes outside are dropped and counted (see :func:`occupied_runs`).

    Yields:
        ``trips`` (trip_id, taxi_id, timestamps int64 Unix s, lon, lat float64 degrees, call_type
        None) and ``rejections`` (trip_id, row None, reason ``too_few_fixes``).

    Raises:
        InputFileError: see :func:`iter_cab_files` and :func:`parse_cab_file`.
    """
    fix_counts = dict.fromkeys(FIX_COUNT_KEYS, 0) if fix_counts is None else fix_counts
    for k in FIX_COUNT_KEYS:
        fix_counts.setdefault(k, 0)
    taken, block, block_pts = 0, [], 0
    with tempfile.TemporaryDirectory(prefix="trajzoo-cabs-") as spill_dir:
        for runs in _runs_by_cab(path, max_gap_seconds, min_fixes, fix_counts, Path(spill_dir), members,
                                 time_range):
            if max_trips is not None:
                runs = runs[:max(max_trips - taken, 0)]
            taken += len(runs)
            for r in runs:
                block.append(r)
                block_pts += len(r.get("timestamps", ()))
                if block_pts >= block_points:
                    yield _cab_block(block)
                    block, block_pts = [], 0
        if block or taken == 0:
            yield _cab_block(block)


def read_cabspotting_trips(path: Path, max_gap_seconds: int = 300, min_fixes: int = 5,
                           max_trips: int | None = None, block_points: int = 1 << 21
                           ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read every cab and return ``(trips, rejections, fix_counts)`` as whole tables.

    The concatenation of :func:`iter_cabspotting_blocks` (use that to stream). Runs are ordered by
    cab id, then start time, whatever the archive order. ``max_trips`` caps the number of occupied
    runs taken in that order; runs past the cap appear in no trip count. ``fix_counts`` (keys
    :data:`FIX_COUNT_KEYS`, see :func:`occupied_runs`) covers every fix read, also those of runs
    past the cap.

    Raises:
        InputFileError: see :func:`iter_cab_files` and :func:`parse_cab_file`.
    """
    fix_counts = dict.fromkeys(FIX_COUNT_KEYS, 0)
    blocks = list(iter_cabspotting_blocks(path, max_gap_seconds, min_fixes, max_trips, fix_counts, block_points))
    trip_parts = [b[0] for b in blocks if len(b[0])]
    trips_df = pd.concat(trip_parts, ignore_index=True) if trip_parts else blocks[0][0]
    rej_parts = [b[1] for b in blocks if len(b[1])]
    rej_df = pd.concat(rej_parts, ignore_index=True) if rej_parts else blocks[0][1]
    return trips_df, rej_df, fix_counts
