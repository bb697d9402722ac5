"""Meta-knowledge enhanced road encoder of MetaTRL (paper eqs. 6-10), with the paper's shapes.

* MKF(s) = MLP^shared(s) in R^d (eq. 6), s the structural vector of eq. 5 (N, 6);
* MKF(e_ij) = MKF(s_i) || MKF(s_j) in R^{2d} (eq. 9), read as a column vector (2d x 1);
* W_ij = MKF(e_ij) W_2 with W_2 in R^{1 x d}, so W_ij in R^{2d x d} (eq. 10), the outer product
  of MKF(e_ij) and W_2;
* e_ij = ((h_i || h_j) W_ij + p_ij W_3) W_4^T with W_3, W_4 in R^{1 x d}: a scalar;
* alpha_ij = softmax over j in N_i of LeakyReLU(e_ij) (negative slope 0.2);
* h_i^(l+1) = ELU(sum_j alpha_ij h_j W_1) (eq. 8) with W_1 in R^{d x d}, h^(0) = NAF(u) =
  MLP^private(u) (eq. 7).

Because W_ij is an outer product, (h_i || h_j) W_ij = ((h_i || h_j) . MKF(e_ij)) W_2: the layer
computes the dot product per edge and never materialises the (E, 2d, d) tensor. There is no
parameter beyond W_1..W_4 and the MLPs.

Neighbourhood: N_i is the set of downstream successors j of segment i (``edge_index[0] = i``,
``edge_index[1] = j``, ``p_ij = transition_prob``) plus a self-loop with p_ii = 0, so messages
flow from j to i along each edge. NAF and W_1..W_4 of every layer are private; MKF is shared
(:mod:`trajzoo_metatrl.parameters`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, MessagePassing
from torch_geometric.utils import softmax

from trajzoo.data.batch import RoadGraph
from trajzoo.nn.graph import (
    STRUCTURAL_DIM,
    encode_with_evaluation_cache,
    receptive_subgraph,
    successor_edges_with_self_loops,
    validate_graph,
)
from trajzoo.nn.mlp import MLP

class MetaKnowledgeGATLayer(MessagePassing):
    """One graph-attention layer with meta-knowledge and transition-probability attention.

    Source: MetaTRL eqs. 8-10 (module docstring). All parameters are private:
    ``private_w1`` (``Linear(d, d)`` without bias, W_1 in R^{d x d}), ``private_w2``, ``private_w3``
    and ``private_w4`` (each ``(1, d)``: W_2, W_3, W_4 in R^{1 x d}).

    Args:
        d_model: hidden size d.
        negative_slope: slope of the LeakyReLU in eq. 10.
    """

    def __init__(self, d_model: int, negative_slope: float = 0.2) -> None:
        # flow="target_to_source": node i = edge_index[0] aggregates messages from its
        # successors j = edge_index[1], as in the paper's notation.
        super().__init__(aggr="add", flow="target_to_source", node_dim=0)
        self.d_model = d_model
        self.negative_slope = negative_slope
        self.private_w1 = nn.Linear(d_model, d_model, bias=False)
        self.private_w2 = nn.Parameter(torch.empty(1, d_model))
        self.private_w3 = nn.Parameter(torch.empty(1, d_model))
        self.private_w4 = nn.Parameter(torch.empty(1, d_model))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform initialisation of W_1..W_4."""
        for weight in (self.private_w1.weight, self.private_w2, self.private_w3, self.private_w4):
            nn.init.xavier_uniform_(weight)

    def edge_scores(self, h_i: Tensor, h_j: Tensor, mkf_i: Tensor, mkf_j: Tensor, p: Tensor) -> Tensor:
        """e_ij of eq. 10 for every edge, before the LeakyReLU and the softmax.

        Args:
            h_i, h_j: ``(E', d)`` embeddings of the aggregating road i and of its neighbour j.
            mkf_i, mkf_j: ``(E', d)`` MKF(s_i), MKF(s_j) (eq. 6).
            p: ``(E',)`` transition probabilities p_ij (dimensionless, in [0, 1]).

        Returns:
            ``(E',)`` scores e_ij = ((h_i || h_j) W_ij + p_ij W_3) W_4^T with
            W_ij = MKF(e_ij) W_2 (2d x d).
        """
        mkf_edge = torch.cat([mkf_i, mkf_j], dim=-1)  # MKF(e_ij), eq. 9, (E', 2d)
        hh = torch.cat([h_i, h_j], dim=-1)  # h_i || h_j, (E', 2d)
        # (h_i || h_j) W_ij = ((h_i || h_j) . MKF(e_ij)) W_2, (E', d)
        edge_hidden = (hh * mkf_edge).sum(dim=-1, keepdim=True) * self.private_w2
        return ((edge_hidden + p.unsqueeze(-1) * self.private_w3) * self.private_w4).sum(dim=-1)

    def forward(self, h: Tensor, mkf: Tensor, edge_index: Tensor, p: Tensor) -> Tensor:  # type: ignore[override]
        """Compute h^(l+1) from h^(l) (eq. 8).

        Args:
            h: ``(N, d)`` road embeddings h^(l).
            mkf: ``(N, d)`` meta knowledge MKF(s) of every road (eq. 6).
            edge_index: ``(2, E')`` neighbourhood edges including self-loops (row 0 = i, the
                aggregating road; row 1 = j, its successor).
            p: ``(E',)`` transition probabilities p_ij (0 on added self-loops).

        Returns:
            ``(N, d)`` road embeddings h^(l+1) (after ELU).
        """
        hw = self.private_w1(h)
        out = self.propagate(edge_index, h=h, hw=hw, mkf=mkf, p=p, size=(h.shape[0], h.shape[0]))
        return F.elu(out)

    def message(  # type: ignore[override]
        self,
        h_i: Tensor,
        h_j: Tensor,
        hw_j: Tensor,
        mkf_i: Tensor,
        mkf_j: Tensor,
        p: Tensor,
        index: Tensor,
        ptr: Tensor | None,
        size_i: int | None,
    ) -> Tensor:
        """Per-edge message alpha_ij h_j W_1 (eqs. 8-10); all tensors are per edge ``(E', ...)``."""
        score = self.edge_scores(h_i, h_j, mkf_i, mkf_j, p)  # e_ij
        alpha = softmax(F.leaky_relu(score, self.negative_slope), index, ptr, size_i)  # (E',)
        return alpha.unsqueeze(-1) * hw_j


class MetaKnowledgeRoadEncoder(nn.Module):
    """Meta-knowledge enhanced road encoder (MetaTRL eqs. 6-10).

    With ``use_meta_knowledge=True``: shared MKF over s, private NAF over u, then ``n_layers``
    :class:`MetaKnowledgeGATLayer`. With ``use_meta_knowledge=False`` (ablation "w/o MKE road
    encoder"): NAF then a plain single-head ``GATConv`` stack (with ELU) over the same
    neighbourhood (successors plus self-loop), without MKF and without p_ij; then the encoder
    has no shared parameters.

    Attributes:
        shared_mkf: MLP ``(N, 6) -> (N, d)`` (eq. 6), only with meta knowledge.
        private_naf: MLP ``(N, F_u) -> (N, d)`` (eq. 7).
        private_layers: the graph layers (eq. 8), ``MetaKnowledgeGATLayer`` or ``GATConv``.

    Args:
        attribute_dim: F_u, the number of road attribute columns.
        d_model: hidden size d.
        n_layers: number of graph layers (>= 1).
        use_meta_knowledge: False for the ablation described above.

    Raises:
        ValueError: if ``n_layers < 1`` or a dimension is not positive.
    """

    def __init__(
        self, attribute_dim: int, d_model: int, n_layers: int = 2, use_meta_knowledge: bool = True
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if attribute_dim <= 0 or d_model <= 0:
            raise ValueError(f"attribute_dim and d_model must be positive, got {attribute_dim}, {d_model}")
        self.attribute_dim = attribute_dim
        self.d_model = d_model
        self.use_meta_knowledge = use_meta_knowledge
        self.private_naf = MLP(attribute_dim, d_model, d_model)
        self.shared_mkf: MLP | None
        self.private_layers: nn.ModuleList
        if use_meta_knowledge:
            self.shared_mkf = MLP(STRUCTURAL_DIM, d_model, d_model)
            self.private_layers = nn.ModuleList(MetaKnowledgeGATLayer(d_model) for _ in range(n_layers))
        else:
            self.shared_mkf = None
            self.private_layers = nn.ModuleList(
                GATConv(d_model, d_model, heads=1, add_self_loops=False) for _ in range(n_layers)
            )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise MKF, NAF and every graph layer."""
        self.private_naf.reset_parameters()
        if self.shared_mkf is not None:
            self.shared_mkf.reset_parameters()
        for layer in self.private_layers:
            layer.reset_parameters()

    def forward(self, graph: RoadGraph, segments: Tensor | None = None) -> Tensor:
        """Embed the roads of the graph: all of them, or only ``segments`` through their
        L-hop subgraph.

        With ``segments`` the layers run on the ``n_layers``-hop receptive field of those roads
        along eq. 8's neighbourhood (:func:`trajzoo.nn.graph.receptive_subgraph`): the outputs
        equal the whole-graph outputs at those roads, at a fraction of the cost. At evaluation
        (module not training, gradients off) the whole-graph output does not depend on the batch
        and is computed once and cached until a parameter, buffer or graph tensor changes.

        Args:
            graph: road network with ``structural`` ``(N, 6)``, ``attributes`` ``(N, F_u)``,
                ``edge_index`` ``(2, E)`` and ``transition_prob`` ``(E,)``.
            segments: optional ``(S,)`` int64 road ids in ``[0, N)``.

        Returns:
            ``(N, d)`` road embeddings h (output of the last graph layer), or ``(S, d)`` at
            ``segments`` (in their order).

        Raises:
            ValueError: if the graph tensors have inconsistent shapes (see :func:`validate_graph`).
        """
        validate_graph(graph, self.attribute_dim)
        return encode_with_evaluation_cache(self, graph, segments, self._encode)

    def _encode(self, graph: RoadGraph, segments: Tensor | None) -> Tensor:
        edge_index, p = successor_edges_with_self_loops(graph)
        attributes, structural = graph.attributes, graph.structural
        mapping = None
        if segments is not None:
            # node i aggregates its successors j = edge_index[1]: flow target_to_source
            subset, edge_index, mapping, edge_mask = receptive_subgraph(
                segments, edge_index, len(self.private_layers), graph.num_segments, "target_to_source")
            p = p[edge_mask]
            attributes, structural = attributes[subset], structural[subset]
        h = self.private_naf(attributes)
        if self.shared_mkf is not None:
            mkf = self.shared_mkf(structural)
            p = p.to(h.dtype)
            for layer in self.private_layers:
                h = layer(h, mkf, edge_index, p)
        else:
            # GATConv aggregates at edge_index[1]; flip so that i (row 0) aggregates its successors.
            flipped = edge_index.flip(0)
            for layer in self.private_layers:
                h = F.elu(layer(h, flipped))
        return h if mapping is None else h[mapping]
