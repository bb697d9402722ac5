"""Load one city's pipeline outputs into tensors: the road graph and batches of trajectories."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trajzoo.data.batch import RoadGraph, TrajectoryBatch
from trajzoo.roads.features import STRUCTURAL_COLUMNS


def standardise(x: np.ndarray) -> np.ndarray:
    """Column-wise (x - mean) / std with std 0 -> 1; ``(N, F)`` float -> float32."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0, keepdims=True) if len(x) else 0.0
    std = x.std(axis=0, keepdims=True) if len(x) else 1.0
    std = np.where(std > 0, std, 1.0)
    return ((x - mean) / std).astype(np.float32)


#: Fixed unit scaling of the structural vector s (MetaTRL eq. 5), the same in every city: the
#: four neighbour-distance statistics (metres, variance in m^2) in units of 100 m (variance in
#: (100 m)^2), the two latitude / longitude differences (degrees) in millidegrees. s feeds the
#: SHARED MKF (eq. 6), so it must mean the same thing in every city: no per-city standardisation.
STRUCTURAL_SCALE = np.array([1e-2, 1e-2, 1e-2, 1e-4, 1e3, 1e3])


def road_graph_from_tables(city: str, structural: pd.DataFrame, attributes: pd.DataFrame,
                           transitions: pd.DataFrame) -> RoadGraph:
    """Build a :class:`RoadGraph` from the road-features stage's tables.

    ``structural`` (s, eq. 5) is multiplied by the fixed :data:`STRUCTURAL_SCALE` (hectometres,
    hectometres^2, millidegrees; identical in every city, never standardised per city). The numeric
    columns of ``attributes`` are standardised within the city (one-hot and 0/1 flags are left as
    they are).

    Raises:
        ValueError: if the tables do not cover segment ids 0..N-1 in order.
    """
    n = len(structural)
    for name, table in (("structural", structural), ("attributes", attributes)):
        if not np.array_equal(table["segment_id"].to_numpy(), np.arange(n)):
            raise ValueError(f"{city}: {name} table must list segment ids 0..{n - 1} in order")
    s = (structural[STRUCTURAL_COLUMNS].to_numpy(dtype=np.float64) * STRUCTURAL_SCALE).astype(np.float32)
    attr = attributes.drop(columns=["segment_id"])
    numeric = [c for c in attr.columns if not c.startswith("class_") and not attr[c].isin([0, 1]).all()]
    u = attr.to_numpy(dtype=np.float64)
    idx = [attr.columns.get_loc(c) for c in numeric]
    u[:, idx] = standardise(u[:, idx])
    return RoadGraph(
        city=city,
        num_segments=n,
        structural=torch.from_numpy(s),
        attributes=torch.from_numpy(u.astype(np.float32)),
        edge_index=torch.from_numpy(transitions[["src", "dst"]].to_numpy(dtype=np.int64).T.copy()),
        transition_prob=torch.from_numpy(transitions["prob"].to_numpy(dtype=np.float32).copy()),
        attribute_names=tuple(str(c) for c in attr.columns),
    )


@dataclass
class CityData:
    """A city's road graph and its map-matched trips with their split.

    Attributes:
        name: city key.
        timezone: IANA zone for local day-of-week / minute-of-day (e.g. ``"Europe/Lisbon"``).
        graph: the road graph.
        trips: one row per matched trip: trip_id, taxi_id, call_type, roads (int64 ids),
            enter_times (Unix s), end_time (Unix s), split, and precomputed ``seconds`` (float32
            since first segment), ``day_of_week``, ``minute_of_day`` arrays.
    """

    name: str
    timezone: str
    graph: RoadGraph
    trips: pd.DataFrame

    def split(self, name: str) -> pd.DataFrame:
        """Trips of one split (``"train"``, ``"val"``, ``"test"``), in trip id order."""
        return self.trips[self.trips["split"] == name].reset_index(drop=True)


def add_time_features(trips: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Add ``seconds``, ``day_of_week`` (0 = Monday) and ``minute_of_day`` arrays per trip.

    Uses the city's local time (``timezone``), computed once for all points with pandas.
    """
    times = trips["enter_times"].to_numpy()
    flat = np.concatenate(times) if len(times) else np.zeros(0)
    local = pd.to_datetime(flat, unit="s", utc=True).tz_convert(timezone)
    dow = np.asarray(local.day_of_week, dtype=np.int64)
    mod = np.asarray(local.hour * 60 + local.minute, dtype=np.int64)
    bounds = np.cumsum([0] + [len(t) for t in times])
    trips = trips.copy()
    trips["seconds"] = [(np.asarray(t) - t[0]).astype(np.float32) for t in times]
    trips["day_of_week"] = [dow[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    trips["minute_of_day"] = [mod[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return trips


def load_city(name: str, timezone: str, matched: Path, splits: Path, structural: Path,
              attributes: Path, transitions: Path) -> CityData:
    """Read a city's Parquet outputs into a :class:`CityData` (only trips with a split label
    ``train``/``val``/``test`` are kept; ``unused`` ones are left out).

    Raises:
        ValueError: if a matched trip has no split, or a road id is out of range.
    """
    trips = pd.read_parquet(matched)
    split = pd.read_parquet(splits)
    trips = trips.merge(split, on="trip_id", how="left", validate="one_to_one")
    if trips["split"].isna().any():
        raise ValueError(f"{matched}: {int(trips['split'].isna().sum())} matched trips have no split in {splits}")
    trips = trips[trips["split"].isin(["train", "val", "test"])].sort_values("trip_id").reset_index(drop=True)
    graph = road_graph_from_tables(name, pd.read_parquet(structural), pd.read_parquet(attributes),
                                   pd.read_parquet(transitions))
    if len(trips):
        top = max(int(np.max(r)) for r in trips["roads"])
        if top >= graph.num_segments:
            raise ValueError(f"{matched}: road id {top} >= number of segments {graph.num_segments}")
    return CityData(name, timezone, graph, add_time_features(trips, timezone))


def collate(rows: list[dict]) -> TrajectoryBatch:
    """Pad a list of trips (dicts with trip_id, roads, seconds, day_of_week, minute_of_day arrays)
    into a :class:`TrajectoryBatch` ``(B, L)`` with L the longest trip."""
    b = len(rows)
    length = max(len(r["roads"]) for r in rows)
    roads = np.zeros((b, length), dtype=np.int64)
    seconds = np.zeros((b, length), dtype=np.float32)
    dow = np.zeros((b, length), dtype=np.int64)
    mod = np.zeros((b, length), dtype=np.int64)
    pad = np.ones((b, length), dtype=bool)
    for i, r in enumerate(rows):
        n = len(r["roads"])
        roads[i, :n] = r["roads"]
        seconds[i, :n] = r["seconds"]
        dow[i, :n] = r["day_of_week"]
        mod[i, :n] = r["minute_of_day"]
        pad[i, :n] = False
    pad_t = torch.from_numpy(pad)
    return TrajectoryBatch(
        roads=torch.from_numpy(roads), padding_mask=pad_t, seconds=torch.from_numpy(seconds),
        day_of_week=torch.from_numpy(dow), minute_of_day=torch.from_numpy(mod),
        time_known=~pad_t, trip_ids=[str(r["trip_id"]) for r in rows],
    )


def trip_rows(trips: pd.DataFrame, prefix_len: np.ndarray | None = None) -> list[dict]:
    """Turn a trips table into collate-ready dicts; ``prefix_len`` (per trip) truncates inputs."""
    rows = []
    cols = ("roads", "seconds", "day_of_week", "minute_of_day")
    for i, rec in enumerate(trips[["trip_id", *cols]].itertuples(index=False)):
        r = rec._asdict()
        if prefix_len is not None:
            k = int(prefix_len[i])
            r = {c: (v[:k] if c in cols else v) for c, v in r.items()}
        rows.append(r)
    return rows


def iterate_batches(rows: list, batch_size: int, shuffle: bool = False,
                    generator: torch.Generator | None = None, shard: bool = False):
    """Yield ``(indices, TrajectoryBatch)`` over ``rows`` in batches (shuffled with ``generator``).

    ``indices`` are positions into ``rows`` (int64 tensor) so callers can pick labels. Batches
    are collated by a ``torch.utils.data.DataLoader`` with the worker processes and pinned memory
    of the run's options (:mod:`trajzoo.training.options`); the order does not depend on them.

    ``shard=True`` (the training batches of the engine, :mod:`trajzoo.training.distributed`):
    under data parallelism with K processes each ``batch_size`` batch is a global batch; this
    process yields only its contiguous share of its rows (``distributed.shard``), padded to the
    global batch's length L, and the shuffle is rank 0's (broadcast). While the consumer handles
    the share, :func:`trajzoo.training.distributed.batch_view` tells the random masks to draw for
    the whole global batch (and :func:`~trajzoo.training.distributed.global_batch` holds it, for
    draws made row by row). With one process ``shard`` changes nothing.
    """
    from trajzoo.training import distributed
    from trajzoo.training.options import batch_loader

    n = len(rows)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    parallel = shard and distributed.world()[1] > 1
    if parallel and shuffle:
        order = distributed.broadcast_order(order)
    batches = [order[start:start + batch_size].tolist() for start in range(0, n, batch_size)]
    # a torch DataLoader (worker processes, pinned memory: config training), in this exact order
    loader = batch_loader(rows, batches, lambda idx, part: (torch.tensor(idx, dtype=torch.int64), collate(part)))
    if not parallel:
        yield from loader
        return
    for idx, batch in loader:
        with distributed.share_of(batch) as share:  # the view is set while the consumer holds the share
            yield distributed.local_rows(idx), share
