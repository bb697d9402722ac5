"""Small synthetic road graph, trajectory batches and a toy city for the baseline tests
(imported by the ``test_baselines_*`` files of this folder)."""
from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from trajzoo.data.batch import RoadGraph, TrajectoryBatch
from trajzoo.data.city import CityData

from road_batch_toy import append_garbage_padding, random_road_batch, toy_trips



@pytest.fixture(autouse=True)
def single_thread():
    """Run each test with one torch thread (restored afterwards): these models are tiny and the
    2 shared CPU cores make OpenMP synchronisation cost 10x the work. Test modules import this
    fixture so that it applies to them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


NUM_SEGMENTS = 10
ATTRIBUTE_DIM = 5
# (upstream i, downstream j); segment 9 is a sink
EDGES = [
    (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 0),
    (0, 5), (2, 7), (4, 9), (6, 3), (1, 8),
]


def build_graph(seed: int = 0, attribute_dim: int = ATTRIBUTE_DIM) -> RoadGraph:
    """A hand-built 10-segment graph with random features and row-normalised p_ij."""
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.tensor(EDGES, dtype=torch.long).t().contiguous()
    counts = torch.rand(edge_index.shape[1], generator=gen) + 0.1
    totals = torch.zeros(NUM_SEGMENTS).index_add_(0, edge_index[0], counts)
    return RoadGraph(
        city="toy", num_segments=NUM_SEGMENTS,
        structural=torch.randn(NUM_SEGMENTS, 6, generator=gen),
        attributes=torch.randn(NUM_SEGMENTS, attribute_dim, generator=gen),
        edge_index=edge_index, transition_prob=counts / totals[edge_index[0]],
    )


def build_batch(lengths: Sequence[int], max_len: int | None = None, seed: int = 0) -> TrajectoryBatch:
    """Random trajectories with the given numbers of real positions, padded to ``max_len``."""
    return random_road_batch(lengths, NUM_SEGMENTS, max_len, seed, time_known_at_padding=False)


def append_padding(batch: TrajectoryBatch, extra: int, seed: int = 1) -> TrajectoryBatch:
    """Append ``extra`` padded columns of in-range garbage (road ids of this toy graph)."""
    return append_garbage_padding(batch, extra, NUM_SEGMENTS, seed)


def toy_city(name: str = "toy", seed: int = 2, n_trips: int = 24) -> CityData:
    """A :class:`CityData` with ``n_trips`` random trips of 4-8 segments (train/val/test 2:1:1)."""
    graph = build_graph(seed)
    return CityData(name, "UTC", graph, toy_trips(name, graph.num_segments, seed, n_trips))
