"""GPS-point batches: the tensors a raw-GPS model (TransferTraj) reads, and the masks through
which every point-level task and pretraining objective is expressed.

TransferTraj (arXiv 2505.12672, "unified task-transferable input-output scheme") treats every
task as recovering a masked modality: the spatial modality (x, y) or the temporal modality (t)
of some points is hidden and the model predicts it. A :class:`PointBatch` therefore carries the
true values of every point together with two boolean masks saying what the model may not see.
A model must read ``xy`` (and the context features computed at the true location: road class,
lanes, maxspeed, POI category, POI count, road km) only where ``spatial_mask`` is False, and the
times only where ``temporal_mask`` is False; :meth:`PointBatch.visible` zeroes the hidden values
so that a bug cannot leak them.

Context vocabularies are fixed here, shared by every city, so that category ids mean the same
thing in the source and target cities (id 0 always means "missing": no road network, no POI
data, or nothing within the radius).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import Tensor

#: OSM ``highway`` values of drivable roads; id = index + 1, 0 = missing (no road network).
ROAD_CLASSES: tuple[str, ...] = (
    "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary",
    "secondary_link", "tertiary", "tertiary_link", "unclassified", "residential", "living_street",
    "service", "road", "other",
)
#: Max-speed buckets in km/h (upper bounds); id = bucket index + 1, 0 = missing/unknown.
MAXSPEED_BUCKETS_KMH: tuple[float, ...] = (20, 30, 40, 50, 60, 80, 100, 130, float("inf"))
#: Lanes are clipped to 1..MAX_LANES; 0 = missing/unknown.
MAX_LANES: int = 6
#: POI categories (OSM amenity/shop/tourism/leisure values grouped); id = index + 1, 0 = none or
#: missing (no POI data for the city, or no POI within the radius).
POI_CATEGORIES: tuple[str, ...] = (
    "food", "lodging", "transport", "parking", "fuel", "shop", "culture", "health", "education",
    "leisure", "finance", "public", "other",
)


@dataclass
class PointBatch:
    """A padded batch of GPS trajectories (B trajectories, L points, padded to the longest).

    Attributes:
        xy: ``(B, L, 2)`` float32, x (east) and y (north) in metres in the city's projected CRS,
            relative to the trajectory's first point (so ``xy[:, 0] == 0``).
        t_minutes: ``(B, L)`` float32 minutes since the trajectory's first point.
        minute_of_day: ``(B, L)`` int64 in [0, 1440), local time of the city.
        day_of_week: ``(B, L)`` int64 in [0, 7), Monday = 0, local time.
        road_class: ``(B, L)`` int64 id into :data:`ROAD_CLASSES` (+1) of the nearest road
            segment within the search radius; 0 = missing.
        road_lanes: ``(B, L)`` int64 lanes of that segment clipped to 1..:data:`MAX_LANES`; 0 = missing.
        road_maxspeed: ``(B, L)`` int64 bucket id of its maxspeed (:data:`MAXSPEED_BUCKETS_KMH`); 0 = missing.
        poi_category: ``(B, L)`` int64 id into :data:`POI_CATEGORIES` (+1) of the most frequent POI
            category within the POI radius; 0 = none or missing.
        context: ``(B, L, 2)`` float32 local spatial context, the SC-MoE gate input:
            ``log1p(number of POIs within the radius)`` and ``road length within the radius in km``;
            0 where the city has no such data.
        has_context: ``(B, L, 2)`` bool, whether the city has POI data / a road network at all
            (a model can use it to select a learned "missing" embedding).
        spatial_mask: ``(B, L)`` bool, True where the model may NOT see x, y (to be recovered),
            nor the context features computed there (see :attr:`context_mask`).
        temporal_mask: ``(B, L)`` bool, True where the model may NOT see the time (to be recovered).
        padding_mask: ``(B, L)`` bool, True at padding positions.
        lengths: ``(B,)`` int64 number of real points per trajectory.
        departure: ``(B,)`` float64 unix seconds (UTC) of the first point.
        trip_ids: B trip ids (strings).
        city: city key from ``config.yaml``.
        origin: ``(B, 2)`` float64 absolute x, y in metres of each trajectory's first point in the
            city's projected CRS (the city frame), or None when unknown. The first point is never
            hidden, so this is always visible; ``xy + origin`` are the absolute positions (used
            by absolute-position models, e.g. TransferTraj's "w/o TRIE" ablation).
    """

    xy: Tensor
    t_minutes: Tensor
    minute_of_day: Tensor
    day_of_week: Tensor
    road_class: Tensor
    road_lanes: Tensor
    road_maxspeed: Tensor
    poi_category: Tensor
    context: Tensor
    has_context: Tensor
    spatial_mask: Tensor
    temporal_mask: Tensor
    padding_mask: Tensor
    lengths: Tensor
    departure: Tensor
    trip_ids: list
    city: str
    origin: Tensor | None = None

    @property
    def batch_size(self) -> int:
        """B."""
        return int(self.xy.shape[0])

    @property
    def max_len(self) -> int:
        """L."""
        return int(self.xy.shape[1])

    def to(self, device: torch.device | str) -> "PointBatch":
        """A copy with every tensor on ``device``."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})

    def rows(self, start: int, stop: int) -> "PointBatch":
        """Trajectories ``start:stop`` of the batch, ``(stop - start, L)``, still padded to this
        batch's L (a process's share of a global batch under data parallelism)."""
        return replace(self, **{f.name: getattr(self, f.name)[start:stop] for f in fields(self)
                                if isinstance(getattr(self, f.name), (Tensor, list))})

    def pin_memory(self) -> "PointBatch":
        """A copy with every tensor in pinned (page-locked) memory (DataLoader ``pin_memory``)."""
        return replace(self, **{f.name: getattr(self, f.name).pin_memory() for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})

    def with_masks(self, spatial_mask: Tensor, temporal_mask: Tensor) -> "PointBatch":
        """A copy with new ``(B, L)`` bool masks (padding positions are never masked).

        Raises:
            ValueError: a mask's shape is not ``(B, L)``.
        """
        shape = tuple(self.padding_mask.shape)
        for name, m in (("spatial_mask", spatial_mask), ("temporal_mask", temporal_mask)):
            if tuple(m.shape) != shape:
                raise ValueError(f"{name} has shape {tuple(m.shape)}, expected {shape}")
        valid = ~self.padding_mask
        return replace(self, spatial_mask=spatial_mask.bool() & valid, temporal_mask=temporal_mask.bool() & valid)

    @property
    def context_mask(self) -> Tensor:
        """``(B, L)`` bool, True where the point's context (road class, lanes, maxspeed, POI
        category, POI count, road km) is hidden. The context is computed at the point's true
        location, so it is hidden exactly where that location is: ``spatial_mask``. A model
        reads this flag to select its "masked context" representation."""
        return self.spatial_mask

    def visible(self) -> "PointBatch":
        """A copy whose hidden values are zeroed, the only view a model may read.

        Where ``spatial_mask`` (= :attr:`context_mask`): ``xy`` and every context feature derived
        from the true location (``road_class``, ``road_lanes``, ``road_maxspeed``,
        ``poi_category`` set to 0 = missing, ``context`` to 0). Where ``temporal_mask``:
        ``t_minutes``, ``minute_of_day`` and ``day_of_week``. ``has_context`` (whether the CITY
        has POI / road data) and the masks themselves stay: they are known without the hidden
        values. After this, changing anything at a hidden point (other than what the task
        reveals) cannot change a model's output.
        """
        s = self.spatial_mask
        tm = self.temporal_mask
        return replace(
            self,
            xy=self.xy.masked_fill(s.unsqueeze(-1), 0.0),
            road_class=self.road_class.masked_fill(s, 0),
            road_lanes=self.road_lanes.masked_fill(s, 0),
            road_maxspeed=self.road_maxspeed.masked_fill(s, 0),
            poi_category=self.poi_category.masked_fill(s, 0),
            context=self.context.masked_fill(s.unsqueeze(-1), 0.0),
            t_minutes=self.t_minutes.masked_fill(tm, 0.0),
            minute_of_day=self.minute_of_day.masked_fill(tm, 0),
            day_of_week=self.day_of_week.masked_fill(tm, 0),
        )


#: Per-point list columns of a points row (see :func:`trajzoo.points.point_features`).
POINT_LIST_COLUMNS = ("x", "y", "t", "minute_of_day", "day_of_week", "road_class", "road_lanes", "road_maxspeed",
                      "poi_category", "poi_log_count", "road_km")


def point_rows(df) -> list[dict]:
    """Turn a points table (:func:`trajzoo.points.point_features` output, or its Parquet file read
    back) into collate-ready dicts, one per trip, in table order.

    Each dict has trip_id (str), has_poi, has_road (bool) and the :data:`POINT_LIST_COLUMNS` as
    numpy arrays (float64 x, y metres absolute; int64 t Unix s; ...).

    Raises:
        ValueError: a column is missing.
    """
    missing = [c for c in ("trip_id", "has_poi", "has_road", *POINT_LIST_COLUMNS) if c not in df.columns]
    if missing:
        raise ValueError(f"point_rows: the points table lacks column(s) {missing}")
    rows = []
    cols = {c: df[c].to_numpy() for c in ("trip_id", "has_poi", "has_road", *POINT_LIST_COLUMNS)}
    for i in range(len(df)):
        r = {"trip_id": str(cols["trip_id"][i]), "has_poi": bool(cols["has_poi"][i]),
             "has_road": bool(cols["has_road"][i])}
        for c in POINT_LIST_COLUMNS:
            r[c] = np.asarray(cols[c][i])
        rows.append(r)
    return rows


def collate_points(rows: list[dict], city: str, max_len: int) -> PointBatch:
    """Pad trips into a :class:`PointBatch` ``(B, L)``, L = min(longest trip, ``max_len``).

    A trip longer than ``max_len`` keeps its FIRST ``max_len`` points (the rest is dropped from
    this batch; tasks then see the truncated trip, e.g. TP predicts the last 5 of the kept points).
    x, y become metres relative to the first point and t minutes since it; ``departure`` keeps the
    first point's Unix time and ``origin`` its absolute x, y (metres, city CRS). ``context`` = [poi_log_count, road_km] and ``has_context`` =
    [has_poi, has_road] at real points (False/0 at padding). Masks are all False.

    Args:
        rows: dicts as from :func:`point_rows` (needs trip_id, has_poi, has_road and the
            :data:`POINT_LIST_COLUMNS`).
        city: city key stored in the batch.
        max_len: most points per trip (>= 1).

    Raises:
        ValueError: no rows, ``max_len < 1``, or a trip without points.
    """
    if not rows:
        raise ValueError("collate_points: no rows")
    if max_len < 1:
        raise ValueError(f"collate_points: max_len must be >= 1, got {max_len}")
    b = len(rows)
    lens = np.array([min(len(r["x"]), max_len) for r in rows], dtype=np.int64)
    if (lens == 0).any():
        raise ValueError(f"collate_points: trip {rows[int(np.argmin(lens))]['trip_id']} has no points")
    length = int(lens.max())
    xy = np.zeros((b, length, 2), dtype=np.float32)
    tmin = np.zeros((b, length), dtype=np.float32)
    ints = {c: np.zeros((b, length), dtype=np.int64) for c in
            ("minute_of_day", "day_of_week", "road_class", "road_lanes", "road_maxspeed", "poi_category")}
    context = np.zeros((b, length, 2), dtype=np.float32)
    has = np.zeros((b, length, 2), dtype=bool)
    pad = np.ones((b, length), dtype=bool)
    departure = np.zeros(b, dtype=np.float64)
    origin = np.zeros((b, 2), dtype=np.float64)
    for i, r in enumerate(rows):
        n = int(lens[i])
        x = np.asarray(r["x"][:n], dtype=np.float64)
        y = np.asarray(r["y"][:n], dtype=np.float64)
        t = np.asarray(r["t"][:n], dtype=np.float64)
        xy[i, :n, 0] = x - x[0]
        xy[i, :n, 1] = y - y[0]
        tmin[i, :n] = (t - t[0]) / 60.0
        departure[i] = t[0]
        origin[i] = (x[0], y[0])
        for c, arr in ints.items():
            arr[i, :n] = r[c][:n]
        context[i, :n, 0] = r["poi_log_count"][:n]
        context[i, :n, 1] = r["road_km"][:n]
        has[i, :n, 0] = bool(r["has_poi"])
        has[i, :n, 1] = bool(r["has_road"])
        pad[i, :n] = False
    no_mask = torch.zeros((b, length), dtype=torch.bool)
    return PointBatch(
        xy=torch.from_numpy(xy), t_minutes=torch.from_numpy(tmin),
        **{c: torch.from_numpy(a) for c, a in ints.items()},
        context=torch.from_numpy(context), has_context=torch.from_numpy(has),
        spatial_mask=no_mask, temporal_mask=no_mask.clone(), padding_mask=torch.from_numpy(pad),
        lengths=torch.from_numpy(lens), departure=torch.from_numpy(departure),
        trip_ids=[str(r["trip_id"]) for r in rows], city=city, origin=torch.from_numpy(origin),
    )


def iterate_point_batches(rows: list[dict], batch_size: int, city: str, max_len: int, shuffle: bool = False,
                          generator: torch.Generator | None = None, shard: bool = False):
    """Yield :class:`PointBatch` es of up to ``batch_size`` trips from ``rows``.

    The order is the rows' order, or ``torch.randperm(len(rows), generator=generator)`` when
    ``shuffle`` (so the same generator state gives the same batches). Batches carry no labels:
    every point task reads its truth from the batch itself (:class:`trajzoo.tasks.point_base.PointTask`).

    ``shard=True`` (training batches, as :func:`trajzoo.data.city.iterate_batches`): under data
    parallelism with K processes each batch is a global batch of which this process yields its
    contiguous share of trajectories (:meth:`PointBatch.rows`, padded to the global batch's L),
    the shuffle is rank 0's, and while the share is handled
    :func:`trajzoo.training.distributed.batch_view` and
    :func:`~trajzoo.training.distributed.global_batch` describe the global batch (random draws are
    made for all of it). With one process ``shard`` changes nothing.

    Raises:
        ValueError: ``batch_size < 1`` (see also :func:`collate_points`).
    """
    if batch_size < 1:
        raise ValueError(f"iterate_point_batches: batch_size must be >= 1, got {batch_size}")
    from trajzoo.training.options import batch_loader

    from trajzoo.training import distributed

    n = len(rows)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    parallel = shard and distributed.world()[1] > 1
    if parallel and shuffle:
        order = distributed.broadcast_order(order)
    batches = [order[start:start + batch_size].tolist() for start in range(0, n, batch_size)]
    # a torch DataLoader (worker processes, pinned memory: config training), in this exact order
    loader = batch_loader(rows, batches, lambda idx, part: collate_points(part, city, max_len))
    if not parallel:
        yield from loader
        return
    try:
        for batch in loader:
            start, stop = distributed.share_bounds(batch.batch_size)
            distributed.set_batch_view((batch.batch_size, start, stop), batch)
            yield batch.rows(start, stop)
    finally:
        distributed.set_batch_view(None)
