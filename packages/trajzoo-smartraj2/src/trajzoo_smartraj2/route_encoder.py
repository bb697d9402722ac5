"""Route encoder of SMARTraj2 (eq. 2): ``h_r = RouteEncoder(T^r, r_v)``.

A graph attention network over the road graph gives every segment a spatial embedding ``z_v``
from its attributes (shared weights: the same GAT runs on every city's graph); temporal features
``t_v`` of each visited segment combine discrete (day of week, 30-minute slot of the day of its
entry) and continuous (travel time on the segment, minutes) variables; ``r_v = z_v + t_v`` plus
a sinusoidal position encoding feeds a Transformer encoder over the route, mean-pooled into h_r.
Times the batch marks unknown (``time_known``) are never read: an entry time only where it is
known, a travel time only where both ends of the segment are known (else a learned vector).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv

from trajzoo.data.batch import RoadGraph, TrajectoryBatch
from trajzoo.nn.graph import successor_edges_with_self_loops
from trajzoo.nn.pooling import mean_pool
from trajzoo.nn.positional import sinusoidal_position_encoding

#: Minutes per time-of-day slot of t_v.
SLOT_MINUTES = 30


class RouteEncoder(nn.Module):
    """Eq. 2. ``road_embeddings(graph) -> (N, d)`` z_v; ``forward(batch, graph, road_mask)`` ->
    ``(tokens (B, L, d), z (N, d))``.

    Args:
        attribute_dim: F_u road attribute columns. d_model: d. gat_layers: GAT layers (ELU between).
        layers, heads, ffn_dim, dropout: the route Transformer encoder.

    Raises:
        ValueError: ``d_model`` not divisible by ``heads``.
    """

    def __init__(self, attribute_dim: int, d_model: int, gat_layers: int = 2, layers: int = 2, heads: int = 4,
                 ffn_dim: int = 128, dropout: float = 0.0):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} not divisible by heads {heads}")
        self.d_model = d_model
        self.attribute_input = nn.Linear(attribute_dim, d_model)
        self.gat = nn.ModuleList(GATConv(d_model, d_model // heads, heads=heads, add_self_loops=False)
                                 for _ in range(gat_layers))
        self.day_of_week = nn.Embedding(7, d_model)
        self.time_slot = nn.Embedding(1440 // SLOT_MINUTES, d_model)
        self.travel_time = nn.Linear(1, d_model)
        self.unknown_time = nn.Parameter(torch.zeros(d_model))
        self.unknown_travel = nn.Parameter(torch.zeros(d_model))
        self.mask_token = nn.Parameter(torch.zeros(d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, ffn_dim, dropout, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, 0.02) learned vectors; layers keep PyTorch's defaults."""
        for p in (self.unknown_time, self.unknown_travel, self.mask_token):
            nn.init.normal_(p, std=0.02)

    def road_embeddings(self, graph: RoadGraph) -> Tensor:
        """``z_v`` of every segment: ``(N, d)`` (GAT over successor edges with self loops)."""
        edge_index, _ = successor_edges_with_self_loops(graph)
        z = self.attribute_input(graph.attributes)
        for i, conv in enumerate(self.gat):
            z = conv(z, edge_index) + z
            if i + 1 < len(self.gat):
                z = torch.nn.functional.elu(z)
        return z

    def temporal_features(self, batch: TrajectoryBatch) -> Tensor:
        """``t_v``: ``(B, L, d)``; see the module docstring for what is read where."""
        known = batch.time_known & ~batch.padding_mask
        when = self.day_of_week(batch.day_of_week.clamp(0, 6)) + self.time_slot(
            (batch.minute_of_day // SLOT_MINUTES).clamp(0, 1440 // SLOT_MINUTES - 1))
        when = torch.where(known[..., None], when, self.unknown_time.expand_as(when))
        dt = torch.zeros_like(batch.seconds)
        both = torch.zeros_like(known)
        dt[:, :-1] = (batch.seconds[:, 1:] - batch.seconds[:, :-1]) / 60.0
        both[:, :-1] = known[:, :-1] & known[:, 1:]
        travel = self.travel_time(torch.log1p(dt.clamp_min(0.0))[..., None])
        travel = torch.where(both[..., None], travel, self.unknown_travel.expand_as(travel))
        return when + travel

    def forward(self, batch: TrajectoryBatch, graph: RoadGraph, road_mask: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """Encode routes.

        Args:
            batch: ``(B, L)`` routes of ``graph``'s city. graph: its road graph.
            road_mask: optional ``(B, L)`` bool, segments replaced by the mask token (masked modelling).

        Returns:
            ``(tokens, z)``: ``(B, L, d)`` route states and ``(N, d)`` z_v.
        """
        z = self.road_embeddings(graph)
        r = z[batch.roads]
        if road_mask is not None:
            r = torch.where(road_mask[..., None], self.mask_token.expand_as(r), r)
        x = r + self.temporal_features(batch) + sinusoidal_position_encoding(batch.roads.shape[1], self.d_model,
                                                                              batch.roads.device)
        return self.transformer(x, src_key_padding_mask=batch.padding_mask), z

    def pool(self, tokens: Tensor, batch: TrajectoryBatch) -> Tensor:
        """h_r: ``(B, d)`` mean over real positions."""
        return mean_pool(tokens, batch.padding_mask)
