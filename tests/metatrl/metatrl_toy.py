"""Toy road graphs and trajectory batches for the MetaTRL tests (a module with its own name: several
test folders have a conftest.py, so `from conftest import ...` is ambiguous)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from trajzoo.data.batch import RoadGraph, TrajectoryBatch
from trajzoo.data.city import CityData

from road_batch_toy import append_garbage_padding, random_road_batch, toy_trips

NUM_SEGMENTS = 10
ATTRIBUTE_DIM = 5
# (upstream i, downstream j); segment 9 is a sink (no successor), 4 -> 9 is its only in-edge
EDGES = [
    (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 0),
    (0, 5), (2, 7), (4, 9), (6, 3), (1, 8),
]


def build_graph(seed: int = 0) -> RoadGraph:
    """A hand-built 10-segment graph with random features and row-normalised p_ij."""
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.tensor(EDGES, dtype=torch.long).t().contiguous()
    counts = torch.rand(edge_index.shape[1], generator=gen) + 0.1
    totals = torch.zeros(NUM_SEGMENTS).index_add_(0, edge_index[0], counts)
    return RoadGraph(
        city="toy",
        num_segments=NUM_SEGMENTS,
        structural=torch.randn(NUM_SEGMENTS, 6, generator=gen),
        attributes=torch.randn(NUM_SEGMENTS, ATTRIBUTE_DIM, generator=gen),
        edge_index=edge_index,
        transition_prob=counts / totals[edge_index[0]],
    )


def build_batch(lengths: Sequence[int], max_len: int | None = None, seed: int = 0) -> TrajectoryBatch:
    """Random trajectories with the given numbers of real positions, padded to ``max_len``."""
    return random_road_batch(lengths, NUM_SEGMENTS, max_len, seed, time_known_at_padding=True)


def append_padding(batch: TrajectoryBatch, extra: int, seed: int = 1) -> TrajectoryBatch:
    """Append ``extra`` padded columns of in-range garbage (road ids of this toy graph)."""
    return append_garbage_padding(batch, extra, NUM_SEGMENTS, seed)


def toy_city(name: str, seed: int, n_trips: int = 24, attribute_dim: int | None = None) -> CityData:
    """A :class:`CityData` on :func:`build_graph` ``(seed)`` (optionally with ``attribute_dim``
    random attribute columns) with ``n_trips`` random trips of 4-8 segments, 5-60 s apart
    (train/val/test 2:1:1), for the meta-learning tests."""
    graph = build_graph(seed)
    if attribute_dim is not None:
        graph.attributes = torch.randn(graph.num_segments, attribute_dim, generator=torch.Generator().manual_seed(seed))
    return CityData(name, "UTC", graph, toy_trips(name, graph.num_segments, seed, n_trips))
