"""The START encoder (Jiang et al., ICDE 2023): TPE-GAT road representations fed to TAT-Enc;
trajectory representation = the pooler of the [CLS] token, ``tanh(W h_cls + b)`` (BERT's pooler,
START's ``pooling: cls``)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from trajzoo.data.batch import RoadGraph, TrajectoryBatch
from trajzoo.nn.batch_checks import validate_road_batch
from trajzoo.nn.graph import batch_segments, scatter_rows

from .config import STARTConfig
from .road_encoder import TPEGATRoadEncoder
from .trajectory_encoder import TimeAwareTrajectoryEncoder


class STARTEncoder(nn.Module):
    """START encoder of one city.

    Attributes:
        d_model: representation size d.
        num_segments: N.
        attribute_dim: F_u.
        road_encoder: :class:`TPEGATRoadEncoder` (TPE-GAT).
        trajectory_encoder: :class:`TimeAwareTrajectoryEncoder` (TAT-Enc, with the [CLS] token).
        pooler: ``Linear(d, d)`` + tanh on the final [CLS] state.

    Args:
        num_segments: N, road segments of the city.
        attribute_dim: F_u, road attribute columns.
        config: hyper-parameters (defaults if None).

    Raises:
        ValueError: ``num_segments`` or ``attribute_dim`` not positive.

    TPE-GAT runs on the L-hop subgraph of the batch's roads in training (the whole-graph outputs
    at those roads, :mod:`trajzoo.nn.graph`) and once over the whole graph at evaluation (cached).
    """

    def __init__(self, num_segments: int, attribute_dim: int, config: STARTConfig | None = None) -> None:
        super().__init__()
        if num_segments <= 0 or attribute_dim <= 0:
            raise ValueError(f"num_segments and attribute_dim must be positive, got {num_segments}, {attribute_dim}")
        self.config = config if config is not None else STARTConfig()
        cfg = self.config
        self.d_model = cfg.d_model
        self.num_segments = num_segments
        self.attribute_dim = attribute_dim
        self.road_encoder = TPEGATRoadEncoder(attribute_dim, cfg.d_model, cfg.gat_layers, cfg.gat_heads,
                                              cfg.use_structural, cfg.dropout, num_segments=num_segments)
        self.trajectory_encoder = TimeAwareTrajectoryEncoder(cfg.d_model, cfg.layers, cfg.heads, cfg.ffn_dim,
                                                             cfg.dropout, cfg.interval_hidden,
                                                             cfg.activation_checkpointing)
        self.pooler = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_model), nn.Tanh())

    def road_embeddings(self, graph: RoadGraph, segments: Tensor | None = None) -> Tensor:
        """``(N, d)`` TPE-GAT representations of the graph's segments.

        Args:
            graph: the city's road graph.
            segments: optional ``(S,)`` int64 ids (:meth:`batch_segments`): only those rows are
                computed, through their ``gat_layers``-hop subgraph (equal to the whole-graph
                rows), the other rows are 0. Ignored at evaluation (module not training,
                gradients off), where the cached whole-graph output is returned.

        Raises:
            ValueError: a graph of another size or with inconsistent tensors.
        """
        if graph.num_segments != self.num_segments:
            raise ValueError(f"graph has {graph.num_segments} segments, encoder built for {self.num_segments}")
        if segments is None or (not self.training and not torch.is_grad_enabled()):
            return self.road_encoder(graph)
        return scatter_rows(self.road_encoder(graph, segments), segments, self.num_segments)

    @staticmethod
    def batch_segments(*batches: TrajectoryBatch) -> Tensor:
        """``(S,)`` sorted ids of the roads TAT-Enc looks up for ``batches``: the real positions'
        roads and 0 (what padding reads)."""
        return batch_segments(torch.zeros(1, dtype=torch.long, device=batches[0].roads.device),
                              *(b.roads.masked_fill(b.padding_mask, 0) for b in batches))

    def encode(self, road_embeddings: Tensor, batch: TrajectoryBatch, road_mask: Tensor | None = None) -> Tensor:
        """TAT-Enc over precomputed road representations (lets pretraining run TPE-GAT once for
        the masked input and both contrastive views).

        Args:
            road_embeddings: ``(N, d)`` from :meth:`road_embeddings`.
            batch: ``(B, L)`` trajectories.
            road_mask: optional ``(B, L)`` bool, True where the road is replaced by [MASK].

        Returns:
            ``(B, L, d)``, zero at padded positions.

        Raises:
            ValueError: inconsistent shapes, real road ids outside ``[0, N)``, an empty
                trajectory, a mask on padding, or a known time out of range.
        """
        validate_road_batch(batch, self.num_segments, road_mask)
        return self.trajectory_encoder(road_embeddings, batch, road_mask)

    def encode_trajectory(self, road_embeddings: Tensor, batch: TrajectoryBatch) -> Tensor:
        """``(B, d)`` trajectory representations over precomputed road representations: the
        pooler of the final [CLS] state.

        Raises:
            ValueError: as :meth:`encode`.
        """
        validate_road_batch(batch, self.num_segments, None)
        return self.pooler(self.trajectory_encoder.forward_with_cls(road_embeddings, batch)[1])

    def forward(self, batch: TrajectoryBatch, graph: RoadGraph, road_mask: Tensor | None = None) -> Tensor:
        """Encode every position: TPE-GAT over the graph, then TAT-Enc.

        Args:
            batch: ``(B, L)`` trajectories of the graph's city.
            graph: the city's road graph.
            road_mask: optional ``(B, L)`` bool span mask.

        Returns:
            ``(B, L, d)``, zero at padded positions.

        Raises:
            ValueError: as :meth:`road_embeddings` and :meth:`encode`.
        """
        return self.encode(self.road_embeddings(graph, self.batch_segments(batch)), batch, road_mask)

    def embed(self, batch: TrajectoryBatch, graph: RoadGraph) -> Tensor:
        """``(B, d)`` trajectory representations: the pooled [CLS] state (:meth:`encode_trajectory`).

        Raises:
            ValueError: as :meth:`forward`.
        """
        return self.encode_trajectory(self.road_embeddings(graph, self.batch_segments(batch)), batch)
