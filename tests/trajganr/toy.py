"""Small synthetic inputs of the TrajGANR unit tests (unit cases only; the end-to-end test runs
on real-data slices)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from trajzoo.locations import LocationInputs, LocationView

FRAME = {"crs": "EPSG:32629", "bbox": [0, 0, 1, 1], "bbox_xy": [0.0, 0.0, 1000.0, 1000.0], "delta_m": 30.0,
         "spacing_m": 100.0, "source": "road"}


def row(trip_id, xs, ys, t0=1_400_000_000, dt=15):
    n = len(xs)
    return {"trip_id": trip_id, "x": np.asarray(xs, float), "y": np.asarray(ys, float),
            "t": np.asarray([t0 + i * dt for i in range(n)], dtype=np.int64),
            "minute_of_day": np.asarray([(600 + i * dt // 60) % 1440 for i in range(n)], dtype=np.int64)}


def straight_rows():
    """Four trips along y = 500 (train: a, b; test: c, d) and one off the road."""
    xs = np.linspace(100, 900, 17)
    return {"a": row("a", xs, np.full(17, 500.0)), "b": row("b", xs, np.full(17, 505.0), dt=20),
            "c": row("c", xs, np.full(17, 498.0), dt=10), "d": row("d", xs[::2], np.full(9, 502.0)),
            "e": row("e", xs, np.full(17, 900.0))}


def location_view(rows, splits, delta_m=30.0):
    from trajzoo.locations import associate
    table = pd.DataFrame({"location_id": [0, 1, 2, 3], "segment_id": [0, 0, 1, 2], "x": [300.0, 500.0, 700.0, 500.0],
                          "y": [500.0, 500.0, 500.0, 100.0], "lon": 0.0, "lat": 0.0,
                          "location_split": ["train", "val", "test", "train"], "source": "road"})
    ids = sorted(rows)
    assoc = associate(table, [rows[i] for i in ids], [splits[i] for i in ids], delta_m)
    return LocationView(table, assoc, dict(FRAME), poi_counts=np.array([[2, 0, 1], [0, 0, 0], [1, 1, 0], [0, 3, 0]]))


def inputs_of(view, rows, splits):
    train = {t: r for t, r in rows.items() if splits[t] == "train"}
    trips = view.trips[view.trips["split"] == "train"].reset_index(drop=True)
    return LocationInputs("toy", "UTC", view.table, view.frame, trips, train, view.images)
