"""Three views of one trip (GPS, route, grid), drawn from the city's one split: the input of
multi-view models (SMARTraj2, paper ``smartraj2.txt`` Section 2 "Definition 2" and eq. 1-3).

* **GPS view** ``T^p``: the raw fixes (projected metres, Unix seconds) of the trip that fall in
  the map-matched time span, with the two binary assignment matrices in compact form:
  ``B^{p|r}`` (fix -> position of the matched road segment in the route) and ``B^{p|g}`` (fix ->
  visit of a grid cell).
* **Route view** ``T^r``: the map-matched segment sequence with entry times (the road batch,
  :class:`trajzoo.data.batch.TrajectoryBatch`).
* **Grid view** ``T^g``: the visited grid cells (consecutive repeats collapsed), each with its POI
  semantics (category shares of the cell's POIs, normalised per cell; :mod:`trajzoo.grid`).

``B^{p|r}`` is derived from the map matching's entry times (FMM interpolates a time for every
segment it enters): a fix at time t belongs to route position i when ``enter_i <= t <
enter_{i+1}`` (the last position up to the trip's end time). Fixes before the first entry or after
the end time lie outside the matched piece and are not part of the views (counted).

What a task hides is expressed on the route batch (a prefix of positions, times marked unknown)
and :func:`collate_views` carries it over to the other two views, so no view reveals what the
route view hides:

* a fix is in the GPS view only if its route position is visible AND the times at both ends of
  that segment are known (``time_known`` at i and i + 1): hidden times are not revealed through
  the GPS timestamps or through the number of fixes (about duration / sampling interval);
* a cell is in the grid view only if a fix of a visible route position lies in it (the cell
  sequence carries no timing).

The paper's trip filters (appendix B.1.3: 10-100 road segments, 10-100 grid cells, 10-256 GPS
points) are :class:`ViewFilters`; every rejected trip is counted with its reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from trajzoo.data.batch import TrajectoryBatch
from trajzoo.data.view_filters import ViewFilters  # noqa: F401 (re-exported: torch-free module)
from trajzoo.grid import POI_SHARE_COLUMNS
from trajzoo.qc import stage_counts

#: Size of a cell's POI semantic vector (one share per POI category).
SEMANTIC_DIM = len(POI_SHARE_COLUMNS)


@dataclass
class CityViews:
    """The three-view records of one city's kept trips.

    Attributes:
        city: city key.
        records: trip id -> dict with ``roads`` (int64 (L,)), ``x``, ``y`` (float64 (P,) metres),
            ``t`` (float64 (P,) Unix s), ``fix_position`` (int64 (P,), ``B^{p|r}``: route position of
            each fix), ``fix_cell`` (int64 (P,) grid cell id of each fix, -1 outside the grid),
            ``split``.
        semantics: ``(n_cells, SEMANTIC_DIM)`` float32 POI shares per cell id (rows sum to 1 for
            cells with POIs, 0 elsewhere).
        has_poi: ``(n_cells,)`` bool, the cell holds at least one POI.
        n_cells: 1 + the largest cell id in the city's grid tables (cell ids are ``0..n_cells-1``).
        qc: stage ``views`` counts: in = kept + rejected (reasons ``no_points``, ``no_grid``,
            ``point_grid_mismatch``, ``too_few_segments`` ... ``too_many_points``), over the
            city's matched train/val/test trips.
    """

    city: str
    records: dict[str, dict]
    semantics: np.ndarray
    has_poi: np.ndarray
    n_cells: int
    qc: pd.DataFrame

    def trip_ids(self, split: str | None = None) -> list[str]:
        """Kept trip ids (of one split, or all), sorted."""
        return sorted(t for t, r in self.records.items() if split is None or r["split"] == split)


def fix_positions(t: np.ndarray, enter_times: np.ndarray, end_time: float) -> np.ndarray:
    """``B^{p|r}`` in compact form: the route position of each fix from the segments' entry times.

    Args:
        t: ``(P,)`` fix times, Unix s. enter_times: ``(L,)`` non-decreasing entry times, Unix s.
        end_time: time of the last matched point, Unix s.

    Returns:
        ``(P,)`` int64: ``i`` with ``enter_i <= t < enter_{i+1}`` (``L - 1`` for
        ``enter_{L-1} <= t <= end_time``); -1 outside ``[enter_0, end_time]``.
    """
    t = np.asarray(t, dtype=np.float64)
    enter = np.asarray(enter_times, dtype=np.float64)
    pos = np.searchsorted(enter, t, side="right") - 1
    outside = (t < enter[0]) | (t > float(end_time))
    return np.where(outside, -1, pos).astype(np.int64)


def build_city_views(city, filters: ViewFilters | None = None) -> CityViews:
    """Join the route (map matching), GPS (points stage) and grid views of a city's trips.

    Args:
        city: :class:`trajzoo.data.prepared.PreparedCity` loaded with ``roads``, ``points`` and
            ``grid``.
        filters: the trip filters (default :class:`ViewFilters`, the paper's).

    Returns:
        :class:`CityViews`.

    Raises:
        ValueError: the city lacks one of the three views (naming it).
    """
    filters = filters or ViewFilters()
    road, points, grid = city.require("road"), city.require("points"), city.require("grid")
    by_trip = {r["trip_id"]: r for rows in points.values() for r in rows}
    gtrips = grid["trips"]
    point_cells = dict(zip(gtrips["trip_id"].astype(str), gtrips["point_cells"]))
    cells = grid["cells"]
    # cell ids seen in the city's tables (ids only, no label): the size of per-city cell tables
    n_cells = int(max([int(cells["cell_id"].max()) + 1 if len(cells) else 0]
                      + [int(np.max(c)) + 1 for c in gtrips["point_cells"] if len(c)] + [1]))
    semantics = np.zeros((n_cells, SEMANTIC_DIM), dtype=np.float32)
    has_poi = np.zeros(n_cells, dtype=bool)
    if len(cells):
        ids = cells["cell_id"].to_numpy(np.int64)
        semantics[ids] = cells[POI_SHARE_COLUMNS].to_numpy(np.float32)
        has_poi[ids] = cells["n_pois"].to_numpy() > 0
    records, reasons = {}, []
    trips = road.trips
    for trip_id, roads, enter, end, split in zip(trips["trip_id"].astype(str), trips["roads"], trips["enter_times"],
                                                 trips["end_time"], trips["split"]):
        p = by_trip.get(trip_id)
        if p is None:
            reasons.append("no_points")
            continue
        pc = point_cells.get(trip_id)
        if pc is None:
            reasons.append("no_grid")
            continue
        pc = np.asarray(pc, dtype=np.int64)
        if len(pc) != len(p["x"]):
            reasons.append("point_grid_mismatch")
            continue
        pos = fix_positions(p["t"], enter, end)
        keep = pos >= 0
        fc = pc[keep]
        inside = fc[fc >= 0]
        n_visits = int(len(inside) and 1 + np.count_nonzero(inside[1:] != inside[:-1]))
        n_seg, n_pts = len(roads), int(keep.sum())
        reason = _filter_reason(filters, n_seg, n_visits, n_pts)
        if reason:
            reasons.append(reason)
            continue
        records[trip_id] = {"roads": np.asarray(roads, dtype=np.int64), "x": np.asarray(p["x"], np.float64)[keep],
                            "y": np.asarray(p["y"], np.float64)[keep], "t": np.asarray(p["t"], np.float64)[keep],
                            "fix_position": pos[keep], "fix_cell": fc, "split": split}
    qc = stage_counts("views", len(trips), len(records), pd.Series(reasons, dtype=object))
    return CityViews(city.name, records, semantics, has_poi, n_cells, qc)


def _filter_reason(f: ViewFilters, n_seg: int, n_cells: int, n_pts: int) -> str | None:
    for what, n in (("segments", n_seg), ("cells", n_cells), ("points", n_pts)):
        if n < getattr(f, f"min_{what}"):
            return f"too_few_{what}"
        if n > getattr(f, f"max_{what}"):
            return f"too_many_{what}"
    return None


@dataclass
class ViewBatch:
    """A padded batch of the three views of B trips (one city).

    Attributes:
        route: the ``(B, L)`` route batch as the task shows it (prefix, hidden times).
        gps: ``(B, P, 3)`` float32 fix features: x, y in km relative to the trip's first fix in
            the GPS view, minutes since it; 0 at padding.
        gps_padding: ``(B, P)`` bool, True at padding (a row may have no fix at all).
        gps_position: ``(B, P)`` int64 ``B^{p|r}``: route position of each fix (-1 at padding).
        gps_visit: ``(B, P)`` int64 ``B^{p|g}``: index into ``cells`` of each fix's visit
            (-1 at padding or outside the grid).
        cells: ``(B, G)`` int64 grid cell ids of the visible visits (0 at padding).
        cell_padding: ``(B, G)`` bool, True at padding.
        semantics: ``(B, G, SEMANTIC_DIM)`` float32 POI shares of each visited cell.
        cell_has_poi: ``(B, G)`` bool.
        city: city key.
    """

    route: TrajectoryBatch
    gps: Tensor
    gps_padding: Tensor
    gps_position: Tensor
    gps_visit: Tensor
    cells: Tensor
    cell_padding: Tensor
    semantics: Tensor
    cell_has_poi: Tensor
    city: str

    def to(self, device) -> "ViewBatch":
        """A copy on ``device``."""
        return ViewBatch(self.route.to(device), *(getattr(self, k).to(device) for k in (
            "gps", "gps_padding", "gps_position", "gps_visit", "cells", "cell_padding", "semantics",
            "cell_has_poi")), self.city)


def collate_views(route: TrajectoryBatch, views: CityViews) -> ViewBatch:
    """The GPS and grid views of the trips of ``route``, hiding what ``route`` hides.

    Visible route positions are the real ones of ``route`` (a task's prefix); see the module
    docstring for the rules (a fix needs its position visible and ``time_known`` at both ends of
    its segment; a cell needs a fix of a visible position). A trip not in ``views`` gets empty GPS
    and grid views.

    Args:
        route: ``(B, L)`` batch with ``trip_ids``.
        views: the city's :class:`CityViews`.

    Returns:
        :class:`ViewBatch` with ``P >= 1`` and ``G >= 1`` (all padding when nothing is visible).
    """
    b = route.roads.shape[0]
    lengths = route.lengths.cpu().numpy()
    known = route.time_known.cpu().numpy()
    fixes, visits = [], []
    for i, trip in enumerate(route.trip_ids):
        rec = views.records.get(str(trip))
        if rec is None:
            fixes.append(np.zeros((0, 3)))
            visits.append((np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)))
            continue
        n = int(lengths[i])
        pos = rec["fix_position"]
        visible = pos < n
        # time known at both ends of the fix's segment (the end of the last segment is the end of
        # the trip's known part only when no later position is hidden)
        kn = known[i, :n].astype(bool)
        end_known = np.empty(n, dtype=bool)
        end_known[:-1] = kn[1:]
        end_known[-1] = bool(kn.all())  # the last visible segment ends at a known time only if none is hidden
        at = np.clip(pos, 0, n - 1)
        timed = visible & kn[at] & end_known[at]
        cell_vis = rec["fix_cell"][visible]
        inside = cell_vis[cell_vis >= 0]
        new = np.concatenate([[True], inside[1:] != inside[:-1]]) if len(inside) else np.zeros(0, bool)
        cell_seq = inside[new]
        visit_in = np.cumsum(new) - 1
        visit_all = np.full(len(cell_vis), -1, dtype=np.int64)
        visit_all[cell_vis >= 0] = visit_in
        vis_idx = np.flatnonzero(visible)
        sel = timed[vis_idx]
        x, y, t = rec["x"][vis_idx][sel], rec["y"][vis_idx][sel], rec["t"][vis_idx][sel]
        if len(x):
            feat = np.column_stack([(x - x[0]) / 1000.0, (y - y[0]) / 1000.0, (t - t[0]) / 60.0])
        else:
            feat = np.zeros((0, 3))
        fixes.append(feat)
        visits.append((pos[vis_idx][sel], visit_all[sel], cell_seq))
    p = max(1, max(len(f) for f in fixes))
    g = max(1, max(len(v[2]) for v in visits))
    gps = np.zeros((b, p, 3), dtype=np.float32)
    gpad = np.ones((b, p), dtype=bool)
    gpos = np.full((b, p), -1, dtype=np.int64)
    gvis = np.full((b, p), -1, dtype=np.int64)
    cells = np.zeros((b, g), dtype=np.int64)
    cpad = np.ones((b, g), dtype=bool)
    for i, (f, (fp, fv, cs)) in enumerate(zip(fixes, visits)):
        gps[i, :len(f)] = f
        gpad[i, :len(f)] = False
        gpos[i, :len(f)] = fp
        gvis[i, :len(f)] = fv
        cells[i, :len(cs)] = cs
        cpad[i, :len(cs)] = False
    sem = views.semantics[cells] * (~cpad)[..., None]
    has = views.has_poi[cells] & ~cpad
    return ViewBatch(route, torch.from_numpy(gps), torch.from_numpy(gpad), torch.from_numpy(gpos),
                     torch.from_numpy(gvis), torch.from_numpy(cells), torch.from_numpy(cpad),
                     torch.from_numpy(sem.astype(np.float32)), torch.from_numpy(has), views.city)


#: Names of the city-side features of :func:`city_features` (SMARTraj2 eq. 7's F^city).
CITY_FEATURES = ("mean_route_km", "std_route_km", "mean_speed_mps", "mean_minutes", "std_minutes",
                 "mean_segments")


def city_features(views: CityViews, road_trips: pd.DataFrame) -> np.ndarray:
    """City-side features F^city (SMARTraj2 eq. 7: "average trajectory length and speed ...
    statistics of trajectory length") from the city's TRAIN split only.

    Route length is the GPS path length of the kept fixes (km), duration the matched span
    (minutes), speed length / duration (m/s), mean number of route segments; fixed units, so the
    numbers mean the same in every city.

    Args:
        views: the city's views. road_trips: the road view's trips (``trip_id``, ``enter_times``,
            ``end_time``).

    Returns:
        ``(len(CITY_FEATURES),)`` float32 (zeros when the train split has no kept trip).
    """
    train = views.trip_ids("train")
    if not train:
        return np.zeros(len(CITY_FEATURES), dtype=np.float32)
    span = dict(zip(road_trips["trip_id"].astype(str),
                    [(float(e) - float(t[0])) for e, t in zip(road_trips["end_time"], road_trips["enter_times"])]))
    km, minutes, segs = [], [], []
    for t in train:
        r = views.records[t]
        km.append(float(np.hypot(np.diff(r["x"]), np.diff(r["y"])).sum()) / 1000.0)
        minutes.append(max(span[t], 1.0) / 60.0)
        segs.append(len(r["roads"]))
    km, minutes = np.asarray(km), np.asarray(minutes)
    speed = float(np.mean(km * 1000.0 / (minutes * 60.0)))
    return np.array([km.mean(), km.std(), speed, minutes.mean(), minutes.std(), np.mean(segs)], dtype=np.float32)
