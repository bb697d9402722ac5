"""trajzoo.nn.graph: road-graph checks and the successor neighbourhood with self loops."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from trajzoo.data.batch import RoadGraph
from trajzoo.nn.graph import STRUCTURAL_DIM, successor_edges_with_self_loops, validate_graph


def _graph() -> RoadGraph:
    # 0 -> 1, 1 -> 1 (observed self loop, p = 0.3), 1 -> 2; 2 is a sink
    return RoadGraph(city="toy", num_segments=3, structural=torch.zeros(3, STRUCTURAL_DIM),
                     attributes=torch.zeros(3, 4), edge_index=torch.tensor([[0, 1, 1], [1, 1, 2]]),
                     transition_prob=torch.tensor([1.0, 0.3, 0.7]))


def test_self_loops_added_with_zero_probability_observed_loop_kept() -> None:
    edge_index, p = successor_edges_with_self_loops(_graph())
    assert edge_index.tolist() == [[0, 1, 0, 1, 2], [1, 2, 0, 1, 2]]
    assert torch.allclose(p, torch.tensor([1.0, 0.7, 0.0, 0.3, 0.0]))


def test_validate_graph_accepts_a_good_graph_and_names_each_fault() -> None:
    graph = _graph()
    validate_graph(graph)
    validate_graph(graph, attribute_dim=4)
    faults = [
        (replace(graph, structural=torch.zeros(3, 5)), "structural"),
        (replace(graph, attributes=torch.zeros(2, 4)), "attributes"),
        (replace(graph, edge_index=torch.zeros(3, 3, dtype=torch.long)), "edge_index must be"),
        (replace(graph, edge_index=graph.edge_index.int()), "int64"),
        (replace(graph, transition_prob=torch.zeros(2)), "transition_prob"),
        (replace(graph, edge_index=torch.tensor([[0, 1, 3], [1, 1, 2]])), "outside"),
    ]
    for bad, message in faults:
        with pytest.raises(ValueError, match=message):
            validate_graph(bad)
    with pytest.raises(ValueError, match="columns"):
        validate_graph(graph, attribute_dim=5)
