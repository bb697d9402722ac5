"""Trip-level quality filters shared by every trajectory source.

Each rejected trip gets exactly one reason (the first failed check, in the order below), so
``len(trips) == len(kept) + len(rejected)``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

EARTH_RADIUS_M = 6_371_008.8

#: Filter reasons, in the order they are checked.
FILTER_REASONS = (
    "duplicate_trip_id", "too_few_points", "too_many_points", "invalid_coordinate",
    "non_increasing_time", "swapped_lon_lat", "outside_bbox", "impossible_speed",
)


def haversine_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in metres between points given in degrees (arrays broadcast)."""
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def trip_reason(lon: np.ndarray, lat: np.ndarray, t: np.ndarray, bbox: list[float], min_points: int,
                max_points: int, max_speed_mps: float) -> str | None:
    """Return the first failed check's reason for one trip, or None if it passes.

    Args:
        lon, lat: ``(n,)`` degrees. t: ``(n,)`` Unix seconds.
        bbox: ``[min_lon, min_lat, max_lon, max_lat]`` degrees; every point must lie inside.
            A trip with a point outside whose points would ALL lie inside with longitude and
            latitude exchanged is ``swapped_lon_lat`` (rejected, not repaired), else
            ``outside_bbox``.
        min_points, max_points: allowed number of GPS points.
        max_speed_mps: largest allowed speed (m/s) between consecutive points.

    Returns:
        One of :data:`FILTER_REASONS` (except ``duplicate_trip_id``) or None.
    """
    n = len(lon)
    if n < min_points:
        return "too_few_points"
    if n > max_points:
        return "too_many_points"
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()) or (np.abs(lat) > 90).any() or (np.abs(lon) > 180).any():
        return "invalid_coordinate"
    dt = np.diff(t)
    if (dt <= 0).any():
        return "non_increasing_time"
    if ((lon < bbox[0]) | (lon > bbox[2]) | (lat < bbox[1]) | (lat > bbox[3])).any():
        swapped_inside = (lat >= bbox[0]) & (lat <= bbox[2]) & (lon >= bbox[1]) & (lon <= bbox[3])
        return "swapped_lon_lat" if swapped_inside.all() else "outside_bbox"
    if n > 1 and (haversine_m(lon[:-1], lat[:-1], lon[1:], lat[1:]) / dt > max_speed_mps).any():
        return "impossible_speed"
    return None


def filter_trips(trips: pd.DataFrame, bbox: list[float], min_points: int, max_points: int,
                 max_speed_mps: float, seen_ids: set[str] | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split trips into kept and rejected (one reason each).

    Args:
        trips: columns trip_id, timestamps, lon, lat (+ any others, kept as they are).
        seen_ids: trip ids already kept in earlier blocks (updated in place); a repeated id is
            rejected as ``duplicate_trip_id``.

    Returns:
        ``(kept, rejected)``; rejected has columns trip_id, row, reason.
    """
    seen_ids = set() if seen_ids is None else seen_ids
    reasons = []
    for trip_id, lon, lat, t in zip(trips["trip_id"], trips["lon"], trips["lat"], trips["timestamps"]):
        if trip_id in seen_ids:
            reasons.append("duplicate_trip_id")
            continue
        reason = trip_reason(np.asarray(lon), np.asarray(lat), np.asarray(t), bbox, min_points,
                             max_points, max_speed_mps)
        if reason is None:
            seen_ids.add(trip_id)
        reasons.append(reason)
    bad = np.array([r is not None for r in reasons], dtype=bool)
    rejected = pd.DataFrame({
        "trip_id": trips["trip_id"].to_numpy()[bad],
        "row": trips["row"].to_numpy()[bad] if "row" in trips else None,
        "reason": [r for r in reasons if r is not None],
    })
    return trips[~bad].reset_index(drop=True), rejected
