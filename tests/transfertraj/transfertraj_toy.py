"""Hand-built GPS point batches and rows for the TransferTraj tests (no data files needed).

A module with its own name, not conftest.py: several test folders have a conftest, and
`from conftest import ...` would pick whichever was imported first."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from trajzoo.data.points import MAX_LANES, MAXSPEED_BUCKETS_KMH, POI_CATEGORIES, ROAD_CLASSES, PointBatch


def build_batch(lengths: Sequence[int], max_len: int | None = None, seed: int = 0, city: str = "toy",
                has_poi: bool = True, has_road: bool = True) -> PointBatch:
    """Smooth random-walk trajectories (x, y metres from the origin, ~10 m/s, 15 s sampling)
    with random context and random absolute origins (UTM-like metres), padded to ``max_len``;
    masks all False."""
    gen = torch.Generator().manual_seed(seed)
    lens = torch.tensor(list(lengths))
    b = len(lengths)
    l = max_len if max_len is not None else int(lens.max())
    pad = torch.arange(l)[None, :] >= lens[:, None]
    heading = torch.rand(b, 1, generator=gen) * 2 * math.pi + torch.cumsum(torch.randn(b, l, generator=gen) * 0.2, 1)
    speed = 8.0 + 4.0 * torch.rand(b, l, generator=gen)  # m/s
    dt_s = 15.0 + 5.0 * torch.rand(b, l, generator=gen)
    step = torch.stack([torch.cos(heading), torch.sin(heading)], -1) * (speed * dt_s).unsqueeze(-1)
    step[:, 0] = 0.0
    xy = torch.cumsum(step, 1).masked_fill(pad.unsqueeze(-1), 0.0)
    t_s = torch.cumsum(torch.cat([torch.zeros(b, 1), dt_s[:, 1:]], 1), 1)
    t_min = (t_s / 60.0).masked_fill(pad, 0.0)
    start = torch.randint(0, 1380, (b, 1), generator=gen)
    mod = ((start + t_min.floor().long()) % 1440).masked_fill(pad, 0)
    dow = torch.randint(0, 7, (b, 1), generator=gen).expand(b, l).clone().masked_fill(pad, 0)

    def ids(hi):
        return torch.randint(0, hi + 1, (b, l), generator=gen).masked_fill(pad, 0)

    context = torch.stack([torch.rand(b, l, generator=gen) * 4, torch.rand(b, l, generator=gen) * 10], -1)
    has = torch.tensor([has_poi, has_road]).expand(b, l, 2).clone()
    context = context.masked_fill(~has, 0.0).masked_fill(pad.unsqueeze(-1), 0.0)
    poi = ids(len(POI_CATEGORIES)) if has_poi else torch.zeros(b, l, dtype=torch.long)
    road = [ids(len(ROAD_CLASSES)), ids(MAX_LANES), ids(len(MAXSPEED_BUCKETS_KMH))] if has_road else \
        [torch.zeros(b, l, dtype=torch.long)] * 3
    return PointBatch(
        xy=xy.float(), t_minutes=t_min.float(), minute_of_day=mod, day_of_week=dow,
        road_class=road[0], road_lanes=road[1], road_maxspeed=road[2], poi_category=poi,
        context=context.float(), has_context=has,
        spatial_mask=torch.zeros(b, l, dtype=torch.bool), temporal_mask=torch.zeros(b, l, dtype=torch.bool),
        padding_mask=pad, lengths=lens, departure=torch.full((b,), 1.4e9, dtype=torch.float64),
        trip_ids=[f"{city}-{i}" for i in range(b)], city=city,
        origin=torch.stack([5.0e5 + 2e4 * torch.rand(b, generator=gen, dtype=torch.float64),
                            4.5e6 + 2e4 * torch.rand(b, generator=gen, dtype=torch.float64)], dim=1),
    )


def batch_to_rows(batch: PointBatch) -> list[dict]:
    """Per-trip dicts in the points-table row format of the contract (x, y absolute: origin + xy)."""
    rows = []
    for i in range(batch.batch_size):
        n = int(batch.lengths[i])
        rows.append({
            "trip_id": batch.trip_ids[i], "start_time": float(batch.departure[i]), "n_points": n,
            "x": (batch.xy[i, :n, 0].double() + float(batch.origin[i, 0])).tolist(),
            "y": (batch.xy[i, :n, 1].double() + float(batch.origin[i, 1])).tolist(),
            "t": (float(batch.departure[i]) + batch.t_minutes[i, :n].double() * 60).tolist(),
            "minute_of_day": batch.minute_of_day[i, :n].tolist(), "day_of_week": batch.day_of_week[i, :n].tolist(),
            "road_class": batch.road_class[i, :n].tolist(), "road_lanes": batch.road_lanes[i, :n].tolist(),
            "road_maxspeed": batch.road_maxspeed[i, :n].tolist(), "poi_category": batch.poi_category[i, :n].tolist(),
            "poi_log_count": batch.context[i, :n, 0].tolist(), "road_km": batch.context[i, :n, 1].tolist(),
            "has_poi": bool(batch.has_context[i, 0, 0]), "has_road": bool(batch.has_context[i, 0, 1]),
        })
    return rows


def pad_batch(batch: PointBatch, extra: int) -> PointBatch:
    """The same batch with ``extra`` more padding positions (zeros / False, padding True)."""
    from dataclasses import fields, replace

    out = {}
    for f in fields(batch):
        v = getattr(batch, f.name)
        if isinstance(v, torch.Tensor) and v.dim() >= 2 and f.name != "origin":
            shape = list(v.shape)
            shape[1] = extra
            fill = torch.ones if f.name == "padding_mask" else torch.zeros
            out[f.name] = torch.cat([v, fill(shape, dtype=v.dtype)], dim=1)
    return replace(batch, **out)
