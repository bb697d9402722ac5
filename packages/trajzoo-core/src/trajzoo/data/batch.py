"""Tensors that cross the boundary between the core and the model packages.

A model package never reads files: the core turns a city's road network and its map-matched
trajectories into a :class:`RoadGraph` and a stream of :class:`TrajectoryBatch` objects, and the
model encodes them. Every model sees the same inputs, so every model can serve every task.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass
class RoadGraph:
    """The road network of one city as tensors (road segments are nodes).

    Attributes:
        city: city key from ``config.yaml`` (e.g. ``"porto"``).
        num_segments: N, the number of road segments (directed OSM edges after cleaning).
        structural: ``(N, 6)`` float32, the MetaTRL structural vector s of paper eq. 5
            (max, min, mean, variance of the pairwise distances in metres among the segment's
            direct neighbours; start-to-end latitude and longitude differences), in the fixed
            units of :data:`trajzoo.data.city.STRUCTURAL_SCALE` (100 m, (100 m)^2, millidegrees),
            the same in every city: no per-city standardisation, since s feeds MetaTRL's shared MKF.
        attributes: ``(N, F_u)`` float32, the attribute vector u (road class one-hot, lanes,
            maxspeed km/h, length m, in/out degree), numeric columns standardised.
        edge_index: ``(2, E)`` int64 segment-to-segment adjacency: ``edge_index[0, e] = i`` is the
            upstream segment and ``edge_index[1, e] = j`` the downstream one (head of i = tail
            of j).
        transition_prob: ``(E,)`` float32, p_ij = count(i -> j) / count(i) over TRAIN trips
            (MetaTRL eq. 10); 0 for pairs never observed.
        attribute_names: the F_u column names of ``attributes`` (``class_primary``, ``lanes``,
            ...), empty when unknown; lets a task hide columns (road label classification hides
            the ``class_*`` one-hot, its label).
    """

    city: str
    num_segments: int
    structural: Tensor
    attributes: Tensor
    edge_index: Tensor
    transition_prob: Tensor
    attribute_names: tuple[str, ...] = ()

    def to(self, device: torch.device | str) -> "RoadGraph":
        """Return a copy with every tensor on ``device``."""
        return replace(
            self,
            structural=self.structural.to(device),
            attributes=self.attributes.to(device),
            edge_index=self.edge_index.to(device),
            transition_prob=self.transition_prob.to(device),
        )


@dataclass
class TrajectoryBatch:
    """A padded batch of map-matched trajectories of one city.

    B trajectories, padded to the longest one (L road segments).

    Attributes:
        roads: ``(B, L)`` int64 road segment ids in ``[0, N)``; padded positions hold 0.
        padding_mask: ``(B, L)`` bool, True at padded positions.
        seconds: ``(B, L)`` float32, time in seconds since the trajectory's first segment at
            which each segment is entered (0 at position 0; 0 at padded positions).
        day_of_week: ``(B, L)`` int64 in 0..6 (Monday = 0), local time of the city.
        minute_of_day: ``(B, L)`` int64 in 0..1439, local time of the city.
        time_known: ``(B, L)`` bool, False where the model must not use the timestamp (time
            masking in pretraining, or every position but the first in travel time estimation).
            The core also overwrites unknown positions' ``seconds``/``day_of_week``/
            ``minute_of_day`` with the departure's values, so a model that ignores this flag
            still cannot see a hidden time.
        trip_ids: list of B trip ids (strings), for writing embeddings.
    """

    roads: Tensor
    padding_mask: Tensor
    seconds: Tensor
    day_of_week: Tensor
    minute_of_day: Tensor
    time_known: Tensor
    trip_ids: list[str]

    @property
    def lengths(self) -> Tensor:
        """``(B,)`` int64 number of real (non-padded) positions per trajectory."""
        return (~self.padding_mask).sum(dim=1)

    def to(self, device: torch.device | str) -> "TrajectoryBatch":
        """Return a copy with every tensor on ``device``."""
        kwargs = {}
        for f in fields(self):
            value = getattr(self, f.name)
            kwargs[f.name] = value.to(device) if isinstance(value, Tensor) else value
        return TrajectoryBatch(**kwargs)

    def rows(self, start: int, stop: int) -> "TrajectoryBatch":
        """Rows ``start:stop`` of the batch, ``(stop - start, L)``, still padded to this batch's L
        (a process's share of a global batch under data parallelism)."""
        kwargs = {}
        for f in fields(self):
            value = getattr(self, f.name)
            kwargs[f.name] = value[start:stop]
        return TrajectoryBatch(**kwargs)

    def pin_memory(self) -> "TrajectoryBatch":
        """A copy with every tensor in pinned (page-locked) memory (DataLoader ``pin_memory``)."""
        return replace(self, **{f.name: getattr(self, f.name).pin_memory() for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})


def hide_times(batch: TrajectoryBatch, hidden: Tensor) -> TrajectoryBatch:
    """Hide the timestamps at ``hidden`` positions so that no model can read them.

    Each hidden position takes the time of the last earlier known position (forward fill along
    the trajectory), so the interval Delta_i of MetaTRL eq. 12 is 0 at a hidden position and
    measures from the last known time at the next known one; ``time_known`` is cleared there.
    Position 0 is never hidden (it is the departure time, which every task may see).

    Args:
        batch: trajectories, ``(B, L)`` fields.
        hidden: ``(B, L)`` bool, True where the time must be hidden.

    Returns:
        A new batch; the input is not modified.

    Raises:
        ValueError: if ``hidden`` does not have the batch's ``(B, L)`` shape.
    """
    if hidden.shape != batch.roads.shape:
        raise ValueError(f"hidden has shape {tuple(hidden.shape)}, batch has {tuple(batch.roads.shape)}")
    hidden = hidden.clone()
    hidden[:, 0] = False
    known = ~hidden
    length = hidden.shape[1]
    positions = torch.arange(length, device=hidden.device).expand_as(hidden)
    # index of the last known position at or before each position (cummax of known indices)
    last_known = torch.where(known, positions, torch.zeros_like(positions)).cummax(dim=1).values

    def fill(x: Tensor) -> Tensor:
        return torch.gather(x, 1, last_known)

    return replace(
        batch,
        seconds=fill(batch.seconds),
        day_of_week=fill(batch.day_of_week),
        minute_of_day=fill(batch.minute_of_day),
        time_known=batch.time_known & known,
    )
