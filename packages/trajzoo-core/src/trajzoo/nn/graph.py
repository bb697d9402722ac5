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


def receptive_subgraph(segments: Tensor, edge_index: Tensor, num_hops: int, num_nodes: int,
                       flow: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The L-hop receptive field of ``segments`` under message passing along ``edge_index``.

    An L-layer graph network's output at a segment depends only on the segments within L hops
    against the message direction, so running the network on that subgraph gives the same
    outputs at ``segments`` as on the whole graph (to float rounding): every segment at distance
    k < L of the targets keeps its whole neighbourhood, hence its softmax normalisation
    (``torch_geometric.utils.k_hop_subgraph``; used by the road encoders of MetaTRL and START).

    Args:
        segments: ``(S,)`` int64 ids in ``[0, N)`` of the segments whose outputs are needed.
        edge_index: ``(2, E)`` int64 message-passing edges (self-loops included, if the network
            uses them).
        num_hops: L, the number of message-passing layers (>= 0).
        num_nodes: N.
        flow: ``"source_to_target"`` (messages flow from ``edge_index[0]`` to ``edge_index[1]``,
            PyG's default) or ``"target_to_source"`` (``edge_index[0]`` aggregates
            ``edge_index[1]``, as in MetaTRL eq. 8).

    Returns:
        ``(subset, sub_edge_index, mapping, edge_mask)``: ``(S',)`` sorted segment ids of the
        subgraph, ``(2, E_sub)`` its edges relabelled to ``[0, S')``, ``(S,)`` the positions of
        ``segments`` in ``subset``, and the ``(E,)`` bool mask of the kept edges (to select
        per-edge attributes).

    Raises:
        ValueError: ``num_hops < 0`` or an unknown ``flow``.
    """
    from torch_geometric.utils import k_hop_subgraph

    if num_hops < 0:
        raise ValueError(f"num_hops must be >= 0, got {num_hops}")
    if flow not in ("source_to_target", "target_to_source"):
        raise ValueError(f"flow must be 'source_to_target' or 'target_to_source', got {flow!r}")
    subset, sub_edge_index, mapping, edge_mask = k_hop_subgraph(
        segments, num_hops, edge_index, relabel_nodes=True, num_nodes=num_nodes, flow=flow)
    return subset, sub_edge_index, mapping, edge_mask


def batch_segments(*roads: Tensor) -> Tensor:
    """``(S,)`` sorted unique segment ids occurring in the given road-id tensors (any shapes)."""
    return torch.unique(torch.cat([r.reshape(-1) for r in roads]))


def scatter_rows(values: Tensor, rows: Tensor, num_rows: int) -> Tensor:
    """``(num_rows, d)`` tensor holding ``values`` ``(S, d)`` at ``rows`` ``(S,)`` and 0 elsewhere
    (differentiable), so code that indexes a whole-graph ``(N, d)`` table by road id reads the
    subgraph outputs unchanged."""
    return values.new_zeros(num_rows, values.shape[-1]).index_copy(0, rows, values)


class EvaluationCache:
    """Caches a module's whole-graph output while neither the parameters, the buffers nor the
    graph change: the key holds each parameter's and buffer's storage pointer and in-place
    version counter (an optimiser step or ``load_state_dict`` bumps it) and the graph tensors'
    storage pointers. Used only at evaluation (module not training, gradients off), where a road
    encoder's output does not depend on the batch."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: Tensor | None = None

    @staticmethod
    def key(module: torch.nn.Module, graph: RoadGraph) -> tuple:
        """The cache key of ``module`` over ``graph``."""
        tensors = list(module.parameters()) + list(module.buffers())
        state = tuple((t.data_ptr(), t._version, tuple(t.shape)) for t in tensors)
        g = (graph.num_segments, graph.structural.data_ptr(), graph.structural._version,
             graph.attributes.data_ptr(), graph.attributes._version, graph.edge_index.data_ptr(),
             graph.edge_index._version, graph.transition_prob.data_ptr(), graph.transition_prob._version)
        return state + g

    def get(self, key: tuple) -> Tensor | None:
        """The cached value for ``key``, or None."""
        return self._value if self._key == key else None

    def put(self, key: tuple, value: Tensor) -> None:
        """Remember ``value`` under ``key`` (one entry)."""
        self._key, self._value = key, value


def encode_with_evaluation_cache(module, graph, segments, encode):
    """A road encoder's forward with its evaluation cache: in eval mode without gradients the
    whole graph is encoded once by ``encode(graph, None)`` and reused (:class:`EvaluationCache`,
    refreshed when a parameter, buffer or graph tensor changes), then indexed by ``segments``;
    otherwise ``encode(graph, segments)`` (the batch's L-hop subgraph). Shared by MetaTRL's and
    START's road encoders.

    Args:
        module: the road encoder (``nn.Module``). graph: its :class:`RoadGraph`.
        segments: ``(S,)`` int64 segment ids or None (all). encode: ``(graph, segments) -> (S|N, d)``.

    Returns:
        ``(S, d)`` (or ``(N, d)`` for ``segments=None``) segment representations.
    """
    if not module.training and not torch.is_grad_enabled():
        cache = module.__dict__.setdefault("_evaluation_cache", EvaluationCache())
        key = cache.key(module, graph)
        h = cache.get(key)
        if h is None:
            h = encode(graph, None)
            cache.put(key, h)
        return h if segments is None else h[segments]
    return encode(graph, segments)
