"""TPE-GAT: the trajectory-pattern-enhanced graph attention road encoder of START (Jiang et al.,
ICDE 2023, Section "Trajectory Pattern-Enhanced Graph Attention Layer").

Road features (the attribute vector u, and the structural vector s when ``use_structural``) are
projected to d by a linear layer, then ``layers`` graph attention layers run over the road
graph. As in START, the attention of segment i over a neighbour j also sees the transfer
probability p_ij (the fraction of train trips on i that continue to j), so frequently taken
transitions can get more weight: each layer is torch_geometric's ``GATConv`` with ``edge_dim=1``
and edge feature p_ij, i.e. alpha_ij = softmax_j(LeakyReLU(a^T [W h_i || W h_j || W_e p_ij])).

Neighbourhood: segment i attends over its downstream successors j (``edge_index[0] = i``,
``edge_index[1] = j``) and itself (self-loop with p_ii = 0 unless observed), so messages flow
from j to i. Heads are concatenated (d / heads each); ELU between layers (not after the last).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv

from trajzoo.data.batch import RoadGraph
from trajzoo.nn.graph import STRUCTURAL_DIM, successor_edges_with_self_loops, validate_graph


def transfer_probability_edges(graph: RoadGraph) -> tuple[Tensor, Tensor]:
    """The message-passing edges of TPE-GAT with their transfer probabilities.

    Args:
        graph: road graph with ``edge_index`` ``(2, E)`` (row 0 = upstream i, row 1 =
            downstream j) and ``transition_prob`` ``(E,)``.

    Returns:
        ``(edge_index, edge_attr)``: ``(2, E')`` int64 in torch_geometric's (source, target)
        convention with source = j and target = i (so i aggregates its successors), and
        ``(E', 1)`` float p_ij; E' = E plus one self-loop (p_ii = 0) per segment without one.
    """
    edge_index, p = successor_edges_with_self_loops(graph)
    return edge_index.flip(0), p.unsqueeze(-1).to(graph.attributes.dtype)


class TPEGATRoadEncoder(nn.Module):
    """TPE-GAT road encoder of START: ``forward(graph) -> (N, d)`` road representations.

    Attributes:
        input_projection: ``Linear(F_u (+ 6), d)`` of the road features.
        convs: the ``GATConv(d, d / heads, heads, edge_dim=1)`` layers.

    Args:
        attribute_dim: F_u, columns of ``graph.attributes``.
        d_model: output size d (divisible by ``heads``).
        layers: number of graph attention layers (>= 1).
        heads: attention heads per layer.
        use_structural: also feed ``graph.structural`` (N, 6).
        dropout: dropout on the attention coefficients.

    Raises:
        ValueError: a size not positive, or ``d_model`` not divisible by ``heads``.
    """

    def __init__(self, attribute_dim: int, d_model: int, layers: int = 2, heads: int = 4,
                 use_structural: bool = True, dropout: float = 0.0) -> None:
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
        self.convs = nn.ModuleList(
            GATConv(d_model, d_model // heads, heads=heads, concat=True, dropout=dropout, add_self_loops=False,
                    edge_dim=1)
            for _ in range(layers))

    def forward(self, graph: RoadGraph) -> Tensor:
        """Road representations of every segment of ``graph``.

        Args:
            graph: the city's road graph (N segments, F_u attribute columns).

        Returns:
            ``(N, d)`` float.

        Raises:
            ValueError: inconsistent graph tensors or a graph with another F_u.
        """
        validate_graph(graph, self.attribute_dim)
        features = graph.attributes
        if self.use_structural:
            features = torch.cat([features, graph.structural.to(features.dtype)], dim=-1)
        h = self.input_projection(features)
        edge_index, edge_attr = transfer_probability_edges(graph)
        for k, conv in enumerate(self.convs):
            h = conv(h, edge_index, edge_attr)
            if k + 1 < len(self.convs):
                h = F.elu(h)
        return h
