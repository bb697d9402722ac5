"""Trajectory ingest: raw public GPS files -> one table of trips, plus counted rejections."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from trajzoo.ingest.cabspotting import read_cabspotting_trips
from trajzoo.ingest.errors import InputFileError
from trajzoo.ingest.filters import filter_trips
from trajzoo.ingest.porto import read_porto_trips
from trajzoo.qc import stage_counts

log = logging.getLogger(__name__)

TRIP_COLUMNS = ["trip_id", "taxi_id", "call_type", "start_time", "n_points", "timestamps", "lon", "lat"]

#: QC outcome of each Cabspotting fix-level count (GPS fixes, not trips; see ``occupied_runs``).
FIX_OUTCOMES = {
    "fixes_in": "fixes_in",
    "duplicate_timestamp": "fixes_dropped:duplicate_timestamp",
    "invalid_occupancy": "fixes_dropped:invalid_occupancy",
    "out_of_order": "fixes_resorted:out_of_order",
}

__all__ = ["ingest_city", "InputFileError", "TRIP_COLUMNS", "FIX_OUTCOMES"]


def ingest_city(city: dict, data_root: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read a city's raw trajectory source, filter it, and account for every trip.

    Args:
        city: the city's config block (``trajectories``, ``bbox``, ``filters``, ``caps``).
        data_root: root folder of the raw data; ``trajectories.path`` is relative to it.

    Returns:
        ``(trips, rejections, qc)``. ``trips`` has :data:`TRIP_COLUMNS` (+ source columns such as
        origin_call for Porto): ``timestamps`` int64 Unix seconds, ``lon``/``lat`` float64
        degrees. ``rejections``: trip_id, row, reason. ``qc``: see :func:`trajzoo.qc.stage_counts`
        (stage ``ingest``; outcomes ``in``, ``kept``, ``rejected:<reason>`` count trips and
        in = kept + rejected). For Cabspotting, ``qc`` also has fix-level rows that count GPS
        fixes, not trips (:data:`FIX_OUTCOMES`): ``fixes_in``, ``fixes_dropped:duplicate_timestamp``,
        ``fixes_dropped:invalid_occupancy`` and ``fixes_resorted:out_of_order`` (always present,
        0 when nothing happened).

    Raises:
        InputFileError: unreadable source (names the file, row and problem).
        ValueError: unknown trajectory format.
    """
    src = city["trajectories"]
    path = Path(data_root) / src["path"]
    flt = city["filters"]
    cap = city.get("caps", {}).get("max_trips")
    kwargs = dict(bbox=city["bbox"], min_points=flt["min_points"], max_points=flt["max_points"],
                  max_speed_mps=flt["max_speed_mps"])
    seen: set[str] = set()
    kept_parts, rej_parts = [], []
    if src["format"] == "porto_csv":
        for trips, parse_rej in read_porto_trips(path, max_trips=cap):
            kept, rej = filter_trips(trips, seen_ids=seen, **kwargs)
            kept_parts.append(kept)
            rej_parts += [parse_rej, rej]
    elif src["format"] == "cabspotting":
        occ = src.get("occupied_runs", {})
        trips, parse_rej, fix_counts = read_cabspotting_trips(
            path, max_gap_seconds=occ.get("max_gap_seconds", 300), min_fixes=occ.get("min_fixes", 5),
            max_trips=cap)
        log.info("cabspotting fixes (read, dropped, re-sorted) before cutting runs: %s", fix_counts)
        kept, rej = filter_trips(trips, seen_ids=seen, **kwargs)
        kept_parts.append(kept)
        rej_parts += [parse_rej, rej]
    else:
        raise ValueError(f"unknown trajectory format {src['format']!r} (expected porto_csv or cabspotting)")
    trips = pd.concat(kept_parts, ignore_index=True) if kept_parts else pd.DataFrame(columns=TRIP_COLUMNS)
    rejections = pd.concat([r for r in rej_parts if len(r)], ignore_index=True) if any(len(r) for r in rej_parts) \
        else pd.DataFrame(columns=["trip_id", "row", "reason"])
    trips["trip_id"] = trips["trip_id"].astype(str)
    trips["taxi_id"] = trips["taxi_id"].astype(str)
    trips["start_time"] = np.array([int(t[0]) for t in trips["timestamps"]], dtype=np.int64)
    trips["n_points"] = np.array([len(t) for t in trips["timestamps"]], dtype=np.int32)
    extra = [c for c in trips.columns if c not in TRIP_COLUMNS and c != "row"]
    trips = trips[TRIP_COLUMNS + extra]
    rejections["trip_id"] = rejections["trip_id"].astype(str)
    rejections["row"] = pd.array(rejections["row"], dtype="Int64")
    n_in = len(trips) + len(rejections)
    qc = stage_counts("ingest", n_in, len(trips), rejections["reason"])
    if src["format"] == "cabspotting":
        fix_rows = pd.DataFrame([{"stage": "ingest", "outcome": outcome, "count": int(fix_counts[key])}
                                 for key, outcome in FIX_OUTCOMES.items()])
        qc = pd.concat([qc, fix_rows], ignore_index=True)
    return trips, rejections, qc
