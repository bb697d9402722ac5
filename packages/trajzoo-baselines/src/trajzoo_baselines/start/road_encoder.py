"""TPE-GAT: the trajectory-pattern-enhanced graph attention road encoder of START (Jiang et al.,
ICDE 2023, Section "Trajectory Pattern-Enhanced Graph Attention Layer").

Road features (the attribute vector u, and the structural vector s when ``use_structural``) are
projected to d by a linear layer, then ``layers`` graph attention layers run over the road
graph. As in START, the attention of segment i over a neighbour j also sees the transfer
probability p_ij (the fraction of train trips on i that continue to j), so frequently taken
transitions can get more weight: each layer is torch_geometric's ``GATConv`` with ``edge_dim=1``
and edge feature p_ij, i.e. alpha_ij = softmax_j(LeakyReLU(a^T [W h_i || W h_j || W_e p_ij])).

Neighbourhood (the paper's direction): segment j attends over its PREDECESSORS i (the segments a
trip enters j from, ``edge_index[0] = i``, ``edge_index[1] = j``) and itself, so messages flow
along the direction of travel, i -> j. The transfer probability on edge i -> j is normalised by
the IN-count of j, ``p_ij = count(i -> j) / sum_k count(k -> j)`` (the fraction of the trips
entering j that came from i), so the p of each segment's neighbourhood sums to 1 (0 on the
self-loop unless observed). ``RoadGraph.transition_prob`` is normalised by out-counts
(``count(i -> j) / count(i)``), so ``count(i -> j) = transition_prob_ij * count(i)`` with the
per-segment out-counts ``count(i)`` that :meth:`TPEGATRoadEncoder.fit_transfer_counts` records
from the TRAIN trips (a persistent buffer); before it is called all out-counts are taken equal.
Heads are concatenated (d / heads each); ELU between layers (not after the last).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv

from trajzoo.data.batch import RoadGraph
from trajzoo.nn.graph import STRUCTURAL_DIM, encode_with_evaluation_cache, receptive_subgraph, validate_graph


def out_counts_from_trips(road_sequences, num_segments: int) -> Tensor:
    """``(N,)`` float64 count(i): transitions out of each segment in the given trips (consecutive
    pairs, a segment repeated in place not counted), as :func:`trajzoo.roads.features.transition_probabilities`.

    Args:
        road_sequences: iterable of int arrays of segment ids in ``[0, N)`` (TRAIN trips).
        num_segments: N.
    """
    counts = torch.zeros(num_segments, dtype=torch.float64)
    for seq in road_sequences:
        r = torch.as_tensor(seq, dtype=torch.long).reshape(-1)
        if r.numel() > 1:
            src = r[:-1][r[:-1] != r[1:]]
            counts += torch.bincount(src, minlength=num_segments).double()
    return counts


def transfer_probability_edges(graph: RoadGraph, out_counts: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The message-passing edges of TPE-GAT with their in-normalised transfer probabilities.

    Args:
        graph: road graph with ``edge_index`` ``(2, E)`` (row 0 = upstream i, row 1 =
            downstream j) and ``transition_prob`` ``(E,)`` = count(i -> j) / count(i).
        out_counts: ``(N,)`` count(i) of the train trips; None or all zero = equal counts.

    Returns:
        ``(edge_index, edge_attr)``: ``(2, E')`` int64 in torch_geometric's (source, target)
        convention with source = i and target = j (j aggregates its predecessors), and
        ``(E', 1)`` float ``p_ij = count(i -> j) / sum_k count(k -> j)`` (0 for a segment nobody
        enters); E' = E plus one self-loop (p_jj = 0) per segment without one.
    """
    from torch_geometric.utils import add_remaining_self_loops

    ei = graph.edge_index
    n = graph.num_segments
    c = out_counts.to(ei.device).double() if out_counts is not None else None
    if c is None or not bool((c > 0).any()):
        c = torch.ones(n, dtype=torch.float64, device=ei.device)
    flow = graph.transition_prob.double() * c[ei[0]]  # count(i -> j)
    into = torch.zeros(n, dtype=torch.float64, device=ei.device).index_add_(0, ei[1], flow)
    p_in = torch.where(into[ei[1]] > 0, flow / into[ei[1]].clamp(min=1e-300), torch.zeros_like(flow))
    edge_index, p = add_remaining_self_loops(ei, p_in, fill_value=0.0, num_nodes=n)
    return edge_index, p.unsqueeze(-1).to(graph.attributes.dtype)


class TPEGATRoadEncoder(nn.Module):
    """TPE-GAT road encoder of START: ``forward(graph) -> (N, d)`` road representations.

    Attributes:
        input_projection: ``Linear(F_u (+ 6), d)`` of the road features.
        convs: the ``GATConv(d, d / heads, heads, edge_dim=1)`` layers.
        out_counts: ``(N,)`` float64 buffer, count(i) of the train trips (zeros = not fitted).

    Args:
        attribute_dim: F_u, columns of ``graph.attributes``.
        d_model: output size d (divisible by ``heads``).
        layers: number of graph attention layers (>= 1).
        heads: attention heads per layer.
        use_structural: also feed ``graph.structural`` (N, 6).
        dropout: dropout on the attention coefficients.
        num_segments: N, size of the ``out_counts`` buffer (None = 0: equal counts always).

    Raises:
        ValueError: a size not positive, or ``d_model`` not divisible by ``heads``.
    """

    def __init__(self, attribute_dim: int, d_model: int, layers: int = 2, heads: int = 4,
                 use_structural: bool = True, dropout: float = 0.0, num_segments: int | None = None) -> None:
        super().__init__()
        if min(attribute_dim, d_model, layers, heads) < 1:
            raise ValueError(f"sizes must be positive, got F_u={attribute_dim}, d={d_model}, layers={layers}, "
                             f"heads={heads}")
        if d_model % heads:
            raise ValueError(f"d_model={d_model} is not divisible by heads={heads}")
        self.attribute_dim = attribute_dim
        self.d_model = d_model
        self.use_structural = use_structural
        in_dim = attribute_dim + (STRUCTURAL_DIM if use_structural else 0)
        self.input_projection = nn.Linear(in_dim, d_model)
        self.register_buffer("out_counts", torch.zeros(num_segments or 0, dtype=torch.float64))
        self.convs = nn.ModuleList(
            GATConv(d_model, d_model // heads, heads=heads, concat=True, dropout=dropout, add_self_loops=False,
                    edge_dim=1)
            for _ in range(layers))

    def fit_transfer_counts(self, road_sequences, num_segments: int) -> None:
        """Record count(i) of the TRAIN trips (:func:`out_counts_from_trips`) for the
        in-normalised transfer probabilities."""
        self.out_counts = out_counts_from_trips(road_sequences, num_segments).to(self.input_projection.weight.device)

    def forward(self, graph: RoadGraph, segments: Tensor | None = None) -> Tensor:
        """Road representations of every segment of ``graph``, or only of ``segments``.

        With ``segments`` the layers run on the ``layers``-hop subgraph of predecessors of those
        segments (:func:`trajzoo.nn.graph.receptive_subgraph`, flow i -> j); the transfer
        probabilities are normalised over the whole graph first, so the outputs equal the
        whole-graph outputs at ``segments``. At evaluation (module not training, gradients off)
        the whole-graph output does not depend on the batch: it is computed once and cached
        until a parameter, buffer or graph tensor changes.

        Args:
            graph: the city's road graph (N segments, F_u attribute columns).
            segments: optional ``(S,)`` int64 ids in ``[0, N)``.

        Returns:
            ``(N, d)`` float, or ``(S, d)`` at ``segments`` (in their order).

        Raises:
            ValueError: inconsistent graph tensors or a graph with another F_u.
        """
        validate_graph(graph, self.attribute_dim)
        return encode_with_evaluation_cache(self, graph, segments, self._encode)

    def _encode(self, graph: RoadGraph, segments: Tensor | None) -> Tensor:
        features = graph.attributes
        if self.use_structural:
            features = torch.cat([features, graph.structural.to(features.dtype)], dim=-1)
        counts = self.out_counts if self.out_counts.numel() == graph.num_segments else None
        edge_index, edge_attr = transfer_probability_edges(graph, counts)
        mapping = None
        if segments is not None:
            subset, edge_index, mapping, edge_mask = receptive_subgraph(
                segments, edge_index, len(self.convs), graph.num_segments, "source_to_target")
            features, edge_attr = features[subset], edge_attr[edge_mask]
        h = self.input_projection(features)
        for k, conv in enumerate(self.convs):
            h = conv(h, edge_index, edge_attr)
            if k + 1 < len(self.convs):
                h = F.elu(h)
        return h if mapping is None else h[mapping]
