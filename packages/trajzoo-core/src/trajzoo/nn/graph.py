"""Road-graph tensor checks and the successor neighbourhood with self loops.

The road graph (:class:`trajzoo.data.batch.RoadGraph`) is directed: ``edge_index[0] = i`` is the
upstream segment, ``edge_index[1] = j`` its downstream successor, ``transition_prob[e] = p_ij``
the fraction of train trips on i that continue to j. The graph encoders of MetaTRL (eq. 8: i
aggregates over its successors N_i and itself) and START (TPE-GAT) use the neighbourhood of
:func:`successor_edges_with_self_loops`.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import add_remaining_self_loops

from trajzoo.data.batch import RoadGraph

STRUCTURAL_DIM = 6
"""Size of the structural vector s of MetaTRL eq. 5 (``trajzoo.roads.features.STRUCTURAL_COLUMNS``)."""


def successor_edges_with_self_loops(graph: RoadGraph) -> tuple[Tensor, Tensor]:
    """The neighbourhood edges N_i of MetaTRL eq. 8 with their transition probabilities.

    Args:
        graph: road graph with ``edge_index`` ``(2, E)`` (row 0 = upstream i, row 1 = downstream
            j) and ``transition_prob`` ``(E,)``.

    Returns:
        ``(edge_index, p)``: ``(2, E')`` int64 and ``(E',)`` float, the graph's edges plus a
        self-loop (i, i) with p_ii = 0 for every segment that does not already have one (an
        existing self-loop keeps its observed p_ii); the added loops come after the edges.
    """
    edge_index, p = add_remaining_self_loops(
        graph.edge_index, graph.transition_prob, fill_value=0.0, num_nodes=graph.num_segments
    )
    assert p is not None
    return edge_index, p


def validate_graph(graph: RoadGraph, attribute_dim: int | None = None) -> None:
    """Check the tensor shapes of a :class:`RoadGraph` with N segments.

    Args:
        graph: the graph to check: ``structural`` ``(N, 6)``, ``attributes`` ``(N, F_u)``,
            ``edge_index`` ``(2, E)`` int64 with ids in ``[0, N)``, ``transition_prob`` ``(E,)``.
        attribute_dim: expected F_u, or None to skip that check.

    Raises:
        ValueError: on any shape or dtype inconsistency, or on out-of-range segment ids.
    """
    n = graph.num_segments
    if graph.structural.shape != (n, STRUCTURAL_DIM):
        raise ValueError(f"structural must be ({n}, {STRUCTURAL_DIM}), got {tuple(graph.structural.shape)}")
    if graph.attributes.dim() != 2 or graph.attributes.shape[0] != n:
        raise ValueError(f"attributes must be ({n}, F_u), got {tuple(graph.attributes.shape)}")
    if attribute_dim is not None and graph.attributes.shape[1] != attribute_dim:
        raise ValueError(f"attributes have {graph.attributes.shape[1]} columns, expected {attribute_dim}")
    if graph.edge_index.dim() != 2 or graph.edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be (2, E), got {tuple(graph.edge_index.shape)}")
    if graph.edge_index.dtype != torch.long:
        raise ValueError(f"edge_index must be int64, got {graph.edge_index.dtype}")
    if graph.transition_prob.shape != (graph.edge_index.shape[1],):
        raise ValueError(
            f"transition_prob must be ({graph.edge_index.shape[1]},), got {tuple(graph.transition_prob.shape)}"
        )
    if graph.edge_index.numel() and (graph.edge_index.min() < 0 or graph.edge_index.max() >= n):
        raise ValueError(f"edge_index holds segment ids outside [0, {n})")
