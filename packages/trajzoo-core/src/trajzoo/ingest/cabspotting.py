"""Reader for Cabspotting (CRAWDAD epfl/mobility) San Francisco taxi GPS.

Original layout: ``cabspottingdata/new_<cab>.txt``, one fix per line ``lat lon occupancy unix_time``
(space separated, newest first). Accepted as the folder or as a .tar/.tar.gz/.tar.xz of it.
Each cab's fixes are sorted by time and cut into occupied runs (occupancy = 1), split where two
consecutive fixes are more than ``max_gap_seconds`` apart; each run is a trip.
"""
from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from trajzoo.ingest.errors import InputFileError

CAB_FILE = re.compile(r"(?:^|/)new_([^/]+)\.txt$")


def iter_cab_files(path: Path) -> Iterator[tuple[str, str, bytes]]:
    """Yield ``(cab_id, display_name, raw_bytes)`` for every ``new_<cab>.txt``.

    A folder is read in file-name order, an archive in archive order (one streaming pass).

    Raises:
        InputFileError: path missing, an unreadable/truncated archive, or no cab file found.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file or folder not found")
    found = 0
    if path.is_dir():
        for f in sorted(path.rglob("new_*.txt")):
            m = CAB_FILE.search(f.as_posix())
            found += 1
            yield m.group(1), str(f), f.read_bytes()
    else:
        try:
            # stream mode ("r|*"): one pass over the compressed archive, no seeking back
            with tarfile.open(path, "r|*") as tar:
                for m in tar:
                    match = CAB_FILE.search(m.name)
                    if m.isfile() and match:
                        found += 1
                        yield match.group(1), f"{path}:{m.name}", tar.extractfile(m).read()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InputFileError(path, f"cannot read archive (truncated or not a tar file?): {exc}") from exc
    if found == 0:
        raise InputFileError(path, "no cabspottingdata/new_<cab>.txt file found")


def parse_cab_file(raw: bytes, name: str) -> pd.DataFrame:
    """Parse one cab file into columns lat, lon (degrees), occupancy (int), time (Unix s).

    An empty file gives an empty table (a cab with no fix in the period).

    Raises:
        InputFileError: wrong column count, a non-numeric value, or non-UTF-8 bytes, naming
            the file and the row.
    """
    if not raw.strip():  # the mirrored sample has cabs with no fix in its window
        return pd.DataFrame({"lat": pd.Series(dtype="float64"), "lon": pd.Series(dtype="float64"),
                             "occupancy": pd.Series(dtype="int64"), "time": pd.Series(dtype="int64")})
    try:
        raw.decode("utf-8")
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
        m = re.search(r"[Rr]ow #?(\d+)", str(exc))
        raise InputFileError(name, f"not 'lat lon occupancy unix_time': {exc}",
                             row=int(m.group(1)) if m else None) from exc
    return table.to_pandas()


def occupied_runs(fixes: pd.DataFrame, cab: str, max_gap_seconds: int, min_fixes: int
                  ) -> tuple[list[dict], list[dict], dict]:
    """Cut one cab's fixes into occupied runs.

    Args:
        fixes: columns lat, lon, occupancy, time (any order).
        cab: cab id, used in trip ids ``<cab>_<first unix time>``.
        max_gap_seconds: a gap longer than this (s) between consecutive occupied fixes splits a run.
        min_fixes: runs with fewer fixes are rejected (reason ``too_few_fixes``).

    Returns:
        ``(trips, rejections, fix_counts)``: trip dicts (trip_id, taxi_id, timestamps, lon, lat),
        rejection dicts (trip_id, row, reason) and counts of dropped fixes by reason
        (``duplicate_timestamp``, ``invalid_occupancy``).
    """
    counts = {"duplicate_timestamp": 0, "invalid_occupancy": 0}
    fixes = fixes.sort_values("time", kind="stable")
    dup = fixes["time"].duplicated(keep="first").to_numpy()
    counts["duplicate_timestamp"] = int(dup.sum())
    fixes = fixes[~dup]
    occ = fixes["occupancy"].to_numpy()
    invalid = ~np.isin(occ, (0, 1))
    counts["invalid_occupancy"] = int(invalid.sum())
    t = fixes["time"].to_numpy()
    occupied = occ == 1
    # a run breaks where occupancy is not 1, or where the gap to the previous fix is too long
    new_run = np.ones(len(t), dtype=bool)
    new_run[1:] = ~occupied[:-1] | (np.diff(t) > max_gap_seconds)
    run_id = np.cumsum(new_run)
    trips, rejections = [], []
    lat, lon = fixes["lat"].to_numpy(), fixes["lon"].to_numpy()
    for rid in np.unique(run_id[occupied]):
        idx = np.flatnonzero((run_id == rid) & occupied)
        trip_id = f"{cab}_{int(t[idx[0]])}"
        if len(idx) < min_fixes:
            rejections.append({"trip_id": trip_id, "taxi_id": cab, "start": int(t[idx[0]]), "row": None,
                               "reason": "too_few_fixes"})
            continue
        trips.append({"trip_id": trip_id, "taxi_id": cab, "start": int(t[idx[0]]),
                      "timestamps": t[idx].astype(np.int64),
                      "lon": lon[idx].astype(np.float64), "lat": lat[idx].astype(np.float64)})
    return trips, rejections, counts


def read_cabspotting_trips(path: Path, max_gap_seconds: int = 300, min_fixes: int = 5,
                           max_trips: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read every cab and return ``(trips, rejections, fix_counts)``.

    Runs are ordered by cab id, then start time, whatever the archive order. ``max_trips`` caps the
    number of occupied runs taken in that order; runs past the cap appear in no count.

    Raises:
        InputFileError: see :func:`iter_cab_files` and :func:`parse_cab_file`.
    """
    runs = []
    fix_counts = {"duplicate_timestamp": 0, "invalid_occupancy": 0}
    for cab, name, raw in iter_cab_files(Path(path)):
        cab_trips, cab_rej, counts = occupied_runs(parse_cab_file(raw, name), cab, max_gap_seconds, min_fixes)
        for k, v in counts.items():
            fix_counts[k] += v
        runs += cab_trips + cab_rej
    runs.sort(key=lambda d: (d["taxi_id"], d["start"]))
    if max_trips is not None:
        runs = runs[:max_trips]
    trips = [r for r in runs if "timestamps" in r]
    rejections = [r for r in runs if "timestamps" not in r]
    trips_df = pd.DataFrame(trips, columns=["trip_id", "taxi_id", "timestamps", "lon", "lat"])
    trips_df["call_type"] = None
    rej_df = pd.DataFrame(rejections, columns=["trip_id", "row", "reason"])
    return trips_df, rej_df, fix_counts
