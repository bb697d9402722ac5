"""A tiny synthetic city with the three views (unit tests only; the e2e test reads real data)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from trajzoo.data.batch import RoadGraph
from trajzoo.data.city import CityData, add_time_features
from trajzoo.data.prepared import PreparedCity
from trajzoo.grid import POI_SHARE_COLUMNS

ATTRIBUTE_NAMES = ("class_primary", "class_primary_link", "class_secondary", "class_tertiary", "class_residential",
                   "class_motorway", "lanes")
#: highway of segments 0..7: primary, primary_link, secondary, tertiary, residential, motorway, residential, secondary
CLASSES = [0, 1, 2, 3, 4, 5, 4, 2]


def graph(city: str = "toy") -> RoadGraph:
    n = len(CLASSES)
    attributes = torch.zeros(n, len(ATTRIBUTE_NAMES))
    attributes[torch.arange(n), torch.tensor(CLASSES)] = 1.0
    attributes[:, -1] = torch.linspace(-1, 1, n)
    src = torch.arange(n - 1)
    return RoadGraph(city, n, torch.zeros(n, 6), attributes, torch.stack([src, src + 1]),
                     torch.full((n - 1,), 0.5), ATTRIBUTE_NAMES)


def trip(trip_id: str, roads: list[int], t0: float, split: str, step_s: float = 15.0, fixes_per_segment: int = 3):
    """One trip: ``fixes_per_segment`` fixes per segment, 100 m apart eastwards; segments 45 s each."""
    n = len(roads)
    enter = t0 + np.arange(n) * step_s * fixes_per_segment
    t = t0 + np.arange(n * fixes_per_segment) * step_s
    x = 1000.0 + 100.0 * np.arange(len(t))
    y = np.full(len(t), 2000.0)
    cells = (np.arange(len(t)) // 4).astype(np.int64)  # a new cell every 4 fixes
    return ({"trip_id": trip_id, "taxi_id": "1", "call_type": "A", "roads": np.asarray(roads, np.int64),
             "enter_times": enter.astype(np.float64), "end_time": float(t[-1]), "split": split},
            {"trip_id": trip_id, "x": x, "y": y, "t": t.astype(np.int64)}, cells)


def prepared(city: str = "toy", n_trips: int = 6, pois: bool = True) -> PreparedCity:
    """A PreparedCity with ``n_trips`` trips of 6 segments (18 fixes, 5 cells) in train/val/test."""
    splits = ["train", "train", "val", "test", "train", "test", "train", "val"]
    trips, points, cells = [], {"train": [], "val": [], "test": []}, []
    for i in range(n_trips):
        roads = [(i + k) % len(CLASSES) for k in range(6)]
        tr, pt, pc = trip(f"t{i}", roads, 1_600_000_000 + 3600 * i, splits[i % len(splits)])
        trips.append(tr)
        points[tr["split"]].append(pt)
        cells.append((tr["trip_id"], pc))
    table = add_time_features(pd.DataFrame(trips), "UTC")
    shares = np.zeros((3, len(POI_SHARE_COLUMNS)))
    shares[0, 0], shares[1, 1], shares[1, 2], shares[2, 5] = 1.0, 0.5, 0.5, 1.0
    cell_table = pd.DataFrame({"cell_id": [0, 2, 4], "n_pois": [1, 2, 1],
                               **{c: shares[:, j] for j, c in enumerate(POI_SHARE_COLUMNS)}})
    if not pois:
        cell_table = cell_table.iloc[:0]
    grid = {"cells": cell_table,
            "trips": pd.DataFrame({"trip_id": [c[0] for c in cells], "point_cells": [c[1] for c in cells]})}
    return PreparedCity(city, "UTC", road=CityData(city, "UTC", graph(city), table), points=points, grid=grid)
