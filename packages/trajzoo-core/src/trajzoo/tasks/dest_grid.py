"""Destination grid prediction (SMARTraj2, Section 4.1.2): predict the grid cell in which the trip
ends, with that last cell hidden from every view."""
from __future__ import annotations

import numpy as np

from trajzoo.qc import stage_counts
from trajzoo.tasks.base import Task, TaskData, split_rows


class DestinationGridPrediction(Task):
    """Destination grid prediction: label = the grid cell of the trip's final visit (the cell of
    its last fix inside the map-matched span); class ids are the city's cell ids.

    What is hidden: the input is the route prefix of the segments the trip has LEFT before it
    first enters its final cell (``enter_{i+1} <= t_first``, the time of the first fix of the
    final visit), so no visible segment, fix or cell is of the final visit; multi-view models
    derive their GPS and grid views from that prefix (:func:`trajzoo.data.views.collate_views`),
    so the last cell is absent from all three views. Trips with fewer than ``min_prefix`` such
    segments are ineligible (``too_short_for_dest_grid``); trips without points or grid view
    (``no_points``, ``no_grid``) or with no fix in the grid inside the matched span
    (``no_fix_in_grid``) too.

    Needs the ``roads``, ``points`` and ``grid`` inputs (:attr:`required_inputs`). Metrics:
    Acc@1, Acc@5 (:func:`trajzoo.metrics.top_k_accuracy`).
    """

    name = "dest_grid"
    kind = "classification"
    metric_names = ("Acc@1", "Acc@5")
    required_inputs = frozenset({"roads", "points", "grid"})

    def __init__(self, min_prefix: int = 2):
        self.min_prefix = int(min_prefix)

    def prepare(self, city):
        """Not available from the road view alone: use :meth:`prepare_prepared`.

        Raises:
            ValueError: always.
        """
        raise ValueError("dest_grid needs the grid and points views: call prepare_prepared(prepared_city)")

    def prepare_prepared(self, city) -> TaskData:
        """Inputs and labels from a :class:`trajzoo.data.prepared.PreparedCity` with roads, points, grid.

        Returns:
            :class:`TaskData` (``n_outputs`` = the city's number of grid cells seen in its tables).
        """
        from trajzoo.data.views import fix_positions
        road, grid = city.require("road"), city.require("grid")
        points = {r["trip_id"]: r for rows in city.require("points").values() for r in rows}
        cells = dict(zip(grid["trips"]["trip_id"].astype(str), grid["trips"]["point_cells"]))
        trips = road.trips
        n_cells = 1 + max([int(grid["cells"]["cell_id"].max()) if len(grid["cells"]) else 0]
                          + [int(np.max(c)) for c in grid["trips"]["point_cells"] if len(c)])
        labels = np.full(len(trips), -1, dtype=np.int64)
        prefix = np.zeros(len(trips), dtype=np.int64)
        reasons = []
        for i, (tid, enter, end) in enumerate(zip(trips["trip_id"].astype(str), trips["enter_times"],
                                                  trips["end_time"])):
            p, pc = points.get(tid), cells.get(tid)
            if p is None or pc is None or len(pc) != len(p["t"]):
                reasons.append("no_points" if p is None else "no_grid")
                continue
            pos = fix_positions(p["t"], enter, end)
            pc = np.asarray(pc, dtype=np.int64)
            ok = (pos >= 0) & (pc >= 0)
            if not ok.any():
                reasons.append("no_fix_in_grid")
                continue
            t, c = np.asarray(p["t"], dtype=np.float64)[ok], pc[ok]
            last = c[-1]
            differ = np.flatnonzero(c != last)
            t_first = t[differ[-1] + 1] if len(differ) else t[0]
            enter = np.asarray(enter, dtype=np.float64)
            k = int(np.count_nonzero(enter[1:] <= t_first))
            if k < self.min_prefix:
                reasons.append("too_short_for_dest_grid")
                continue
            labels[i], prefix[i] = last, k
        ok = labels >= 0
        qc = stage_counts("task:dest_grid", len(trips), int(ok.sum()), np.array(reasons, dtype=object))
        rows, labs = split_rows(trips[ok], labels[ok], prefix_len=prefix[ok])
        return TaskData(rows, labs, n_cells, qc)

    def metrics(self, y_true, outputs):
        """Acc@1, Acc@5 of ``(n, n_cells)`` cell scores."""
        from trajzoo.metrics import classification_metrics
        m = classification_metrics(y_true, outputs, ks=(), acc_ks=(1, 5))
        return {k: m[k] for k in self.metric_names}
