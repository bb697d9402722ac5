"""MetaTRL configuration and full encoder (road, temporal and trajectory encoders, paper eqs. 6-18).

The encoder of one city: the meta-knowledge road encoder runs over the L-hop subgraph of the
batch's roads in training (whole-graph outputs at those roads, :mod:`trajzoo.nn.graph`) and over
the whole graph once at evaluation (cached); its outputs are gathered along the trajectories, added to the temporal embeddings
and position encodings (eq. 15) and encoded by the knowledge-fusion trajectory encoder.
"""
from __future__ import annotations


import torch
from torch import Tensor, nn

from trajzoo.data.batch import RoadGraph, TrajectoryBatch
from trajzoo.nn.batch_checks import validate_road_batch
from trajzoo.nn.graph import batch_segments, scatter_rows
from trajzoo.nn.pooling import mean_pool

from .config import MetaTRLConfig  # noqa: F401 (re-exported: the config class lives in a torch-free module)
from .road_encoder import MetaKnowledgeRoadEncoder
from .temporal_encoder import TransferableTemporalEncoder
from .trajectory_encoder import KnowledgeFusionTrajectoryEncoder


class MetaTRLEncoder(nn.Module):
    """The MetaTRL encoder of one city (paper eqs. 6-18).

    Attributes:
        d_model: representation size d.
        num_segments: N, the number of road segments of the city.
        attribute_dim: F_u, road attribute columns.
        road_encoder: :class:`MetaKnowledgeRoadEncoder`.
        temporal_encoder: :class:`TransferableTemporalEncoder`.
        trajectory_encoder: :class:`KnowledgeFusionTrajectoryEncoder`.

    Args:
        num_segments: N.
        attribute_dim: F_u.
        config: hyper-parameters (defaults if None).

    Raises:
        ValueError: if ``num_segments`` or ``attribute_dim`` is not positive.
    """

    def __init__(self, num_segments: int, attribute_dim: int, config: MetaTRLConfig | None = None) -> None:
        super().__init__()
        if num_segments <= 0 or attribute_dim <= 0:
            raise ValueError(f"num_segments and attribute_dim must be positive, got {num_segments}, {attribute_dim}")
        self.config = config if config is not None else MetaTRLConfig()
        cfg = self.config
        self.num_segments = num_segments
        self.attribute_dim = attribute_dim
        self.d_model = cfg.d_model
        self.road_encoder = MetaKnowledgeRoadEncoder(
            attribute_dim, cfg.d_model, cfg.gat_layers, use_meta_knowledge=cfg.use_meta_knowledge
        )
        self.temporal_encoder = TransferableTemporalEncoder(
            cfg.d_model, cfg.num_buckets, use_time_encoder=cfg.use_time_encoder, use_interval=cfg.use_interval,
            unclassified_shared=cfg.unclassified_shared,
        )
        self.trajectory_encoder = KnowledgeFusionTrajectoryEncoder(
            cfg.d_model, cfg.layers, cfg.heads, cfg.ffn_dim, cfg.dropout, cfg.use_knowledge_fusion,
            cfg.unclassified_shared, cfg.activation_checkpointing,
        )

    def reset_parameters(self) -> None:
        """Re-initialise the three component encoders."""
        self.road_encoder.reset_parameters()
        self.temporal_encoder.reset_parameters()
        self.trajectory_encoder.reset_parameters()

    def _validate(self, batch: TrajectoryBatch, graph: RoadGraph, road_mask: Tensor | None) -> None:
        if graph.num_segments != self.num_segments:
            raise ValueError(f"graph has {graph.num_segments} segments, encoder built for {self.num_segments}")
        # the road encoder's output is looked up at every position, padding included
        validate_road_batch(batch, self.num_segments, road_mask, ids_at_padding=True)

    def road_embeddings(self, batch: TrajectoryBatch, graph: RoadGraph) -> Tensor:
        """``(N, d)`` road encoder outputs, exact at every road id of ``batch`` (padding included).

        In training (or with gradients on) only the batch's roads are encoded, through their
        ``gat_layers``-hop subgraph, and the other rows are 0; at evaluation the cached
        whole-graph output is returned (:meth:`MetaKnowledgeRoadEncoder.forward`).
        """
        if not self.training and not torch.is_grad_enabled():
            return self.road_encoder(graph)
        segments = batch_segments(batch.roads)
        return scatter_rows(self.road_encoder(graph, segments), segments, graph.num_segments)

    def forward(self, batch: TrajectoryBatch, graph: RoadGraph, road_mask: Tensor | None = None) -> Tensor:
        """Encode every position of every trajectory.

        Args:
            batch: ``(B, L)`` trajectories of the graph's city.
            graph: the city's road graph (N segments).
            road_mask: optional ``(B, L)`` bool, True where the road is replaced by the [MASK]
                vector (span masking in pre-training). Hiding the times there is the caller's
                job (``hide_times``).

        Returns:
            ``(B, L, d)`` Z, zero at padded positions.

        Raises:
            ValueError: on inconsistent shapes, a graph of another size, segment ids outside
                ``[0, N)`` (padding included), a ``road_mask`` on padding or an empty trajectory
                (:func:`trajzoo.nn.batch_checks.validate_road_batch`).
        """
        self._validate(batch, graph, road_mask)
        road_embeddings = self.road_embeddings(batch, graph)  # (N, d), rows of the batch's roads
        time_embeddings = self.temporal_encoder(batch)  # (B, L, d)
        x = self.trajectory_encoder.embed_inputs(road_embeddings, batch.roads, time_embeddings, road_mask)
        return self.trajectory_encoder(x, batch.padding_mask)

    def embed(self, batch: TrajectoryBatch, graph: RoadGraph) -> Tensor:
        """Trajectory representations z: :meth:`forward` then mean pooling over real positions.

        Returns:
            ``(B, d)``.

        Raises:
            ValueError: as :meth:`forward`.
        """
        return mean_pool(self.forward(batch, graph), batch.padding_mask)
