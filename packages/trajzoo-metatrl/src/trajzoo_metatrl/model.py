"""MetaTRL configuration and full encoder (road, temporal and trajectory encoders, paper eqs. 6-18).

The encoder of one city: the meta-knowledge road encoder runs over the whole road graph at every
forward pass, its outputs are gathered along the trajectories, added to the temporal embeddings
and position encodings (eq. 15) and encoded by the knowledge-fusion trajectory encoder.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from torch import Tensor, nn

from trajzoo.data.batch import RoadGraph, TrajectoryBatch
from trajzoo.nn.pooling import mean_pool

from .road_encoder import MetaKnowledgeRoadEncoder
from .temporal_encoder import TransferableTemporalEncoder
from .trajectory_encoder import KnowledgeFusionTrajectoryEncoder


@dataclass
class MetaTRLConfig:
    """Hyper-parameters of MetaTRL.

    Attributes:
        d_model: hidden size d of every component.
        gat_layers: number of road-encoder graph layers (eq. 8).
        layers: number of trajectory-encoder layers (eqs. 16-18).
        heads: attention heads of the trajectory encoder.
        ffn_dim: feed-forward hidden size of the trajectory encoder.
        dropout: dropout probability in the trajectory encoder.
        num_buckets: N_B, virtual buckets of the interval encoder (eq. 13).
        mask_ratio: fraction of each trajectory's real positions that are span-masked.
        mean_span_length: mean length (segments) of a masked span.
        time_mask_ratio: fraction of the remaining (not span-masked, not first) real positions
            whose time is masked.
        gamma: weight of the road-recovery loss in eq. 20.
        use_meta_knowledge: False -> ablation "w/o MKE road encoder" (plain GAT).
        use_time_encoder: False -> no time embedding at all.
        use_interval: False -> no interval embedding (T = T^P).
        use_knowledge_fusion: False -> plain Transformer trajectory encoder.
        use_time_mask: False -> no time masking in pre-training (loss = road CE only).

    Raises:
        ValueError: (on construction) if a value is out of range.
    """

    d_model: int = 64
    gat_layers: int = 2
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 128
    dropout: float = 0.0
    num_buckets: int = 32
    mask_ratio: float = 0.2
    mean_span_length: float = 3.0
    time_mask_ratio: float = 0.2
    gamma: float = 0.5
    use_meta_knowledge: bool = True
    use_time_encoder: bool = True
    use_interval: bool = True
    use_knowledge_fusion: bool = True
    use_time_mask: bool = True

    def __post_init__(self) -> None:
        for name in ("d_model", "gat_layers", "layers", "heads", "ffn_dim", "num_buckets"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by heads={self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if not 0.0 <= self.time_mask_ratio < 1.0:
            raise ValueError(f"time_mask_ratio must be in [0, 1), got {self.time_mask_ratio}")
        if self.mean_span_length < 1.0:
            raise ValueError(f"mean_span_length must be >= 1, got {self.mean_span_length}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MetaTRLConfig":
        """Build a config from a mapping (e.g. a YAML section); missing keys take defaults.

        Raises:
            ValueError: naming every key that is not a field, or if a value is out of range.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown MetaTRL config keys: {unknown}")
        return cls(**dict(d))


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
            cfg.d_model, cfg.num_buckets, use_time_encoder=cfg.use_time_encoder, use_interval=cfg.use_interval
        )
        self.trajectory_encoder = KnowledgeFusionTrajectoryEncoder(
            cfg.d_model, cfg.layers, cfg.heads, cfg.ffn_dim, cfg.dropout, cfg.use_knowledge_fusion
        )

    def reset_parameters(self) -> None:
        """Re-initialise the three component encoders."""
        self.road_encoder.reset_parameters()
        self.temporal_encoder.reset_parameters()
        self.trajectory_encoder.reset_parameters()

    def _validate(self, batch: TrajectoryBatch, graph: RoadGraph, road_mask: Tensor | None) -> None:
        if graph.num_segments != self.num_segments:
            raise ValueError(f"graph has {graph.num_segments} segments, encoder built for {self.num_segments}")
        shape = batch.roads.shape
        for name in ("padding_mask", "seconds", "day_of_week", "minute_of_day", "time_known"):
            if getattr(batch, name).shape != shape:
                raise ValueError(f"batch.{name} has shape {tuple(getattr(batch, name).shape)}, roads {tuple(shape)}")
        if road_mask is not None and road_mask.shape != shape:
            raise ValueError(f"road_mask has shape {tuple(road_mask.shape)}, roads {tuple(shape)}")
        if batch.roads.numel():
            if batch.roads.min() < 0 or batch.roads.max() >= self.num_segments:
                raise ValueError(f"batch.roads holds ids outside [0, {self.num_segments})")
            if bool((batch.lengths < 1).any()):
                raise ValueError("every trajectory must have at least one real position")

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
                ``[0, N)`` or an empty trajectory.
        """
        self._validate(batch, graph, road_mask)
        road_embeddings = self.road_encoder(graph)  # (N, d)
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
