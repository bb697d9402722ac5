"""``transformer-mlm``: a BERT-style Transformer over road-segment ids (the Toast / BERT family of
trajectory models), pretrained by masked-road prediction.

Input: x_t = E[road_t] + pe_t, with E a learned embedding of the N road segments plus one
[MASK] row (index N) and pe the fixed sinusoidal position encoding, then LayerNorm and dropout.
Encoder: ``torch.nn.TransformerEncoder`` (post-LayerNorm, GELU, ``batch_first``) with a key
padding mask. Pretraining (BERT's masked language model): ~``mask_ratio`` of each trajectory's
real positions are replaced by [MASK] (never padding; at least one per trajectory) and a linear
head predicts their road id among the N segments (cross-entropy over masked positions). The
model ignores every time field of the batch and the road graph's features (it uses N only).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trajzoo.data.batch import RoadGraph, TrajectoryBatch
from trajzoo.nn.batch_checks import validate_road_batch
from trajzoo.nn.pooling import mean_pool
from trajzoo.nn.positional import sinusoidal_position_encoding
from trajzoo.nn.random_mask import random_position_mask

from .config import TransformerEncoderConfig, TransformerMLMConfig, TransformerMLMSchedule  # noqa: F401 (re-exported)


class TransformerMLMEncoder(nn.Module):
    """BERT-style road-id Transformer encoder.

    Attributes:
        d_model: representation size d.
        num_segments: N.
        mask_index: N, the row of ``road_embedding`` used for [MASK].
        road_embedding: ``Embedding(N + 1, d)``.
        transformer: ``nn.TransformerEncoder`` (``batch_first``).

    Args:
        num_segments: N, road segments of the city.
        config: hyper-parameters (defaults if None).

    Raises:
        ValueError: ``num_segments`` not positive.
    """

    def __init__(self, num_segments: int, config: TransformerMLMConfig | None = None) -> None:
        super().__init__()
        if num_segments <= 0:
            raise ValueError(f"num_segments must be positive, got {num_segments}")
        self.config = config if config is not None else TransformerMLMConfig()
        cfg = self.config
        self.d_model = cfg.d_model
        self.num_segments = num_segments
        self.mask_index = num_segments
        self.road_embedding = nn.Embedding(num_segments + 1, cfg.d_model)
        self.input_norm = nn.LayerNorm(cfg.d_model)
        self.input_dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, cfg.ffn_dim, cfg.dropout, activation="gelu",
                                           batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        nn.init.normal_(self.road_embedding.weight, std=0.02)

    def forward(self, batch: TrajectoryBatch, graph: RoadGraph | None = None, road_mask: Tensor | None = None
                ) -> Tensor:
        """Encode every position.

        Args:
            batch: ``(B, L)`` trajectories; only ``roads`` and ``padding_mask`` are read.
            graph: the city's road graph (only its N is checked; may be None).
            road_mask: optional ``(B, L)`` bool, True where the road is replaced by [MASK].

        Returns:
            ``(B, L, d)`` token states, zero at padded positions.

        Raises:
            ValueError: a graph of another size, inconsistent shapes, real road ids outside
                ``[0, N)``, an empty trajectory or a mask on padding.
        """
        if graph is not None and graph.num_segments != self.num_segments:
            raise ValueError(f"graph has {graph.num_segments} segments, encoder built for {self.num_segments}")
        validate_road_batch(batch, self.num_segments, road_mask)
        pad = batch.padding_mask
        roads = batch.roads.masked_fill(pad, 0)
        if road_mask is not None:
            roads = roads.masked_fill(road_mask, self.mask_index)
        length = roads.shape[1]
        x = self.road_embedding(roads) + sinusoidal_position_encoding(length, self.d_model, roads.device)
        x = self.input_dropout(self.input_norm(x))
        z = self.transformer(x, src_key_padding_mask=pad)
        return z.masked_fill(pad.unsqueeze(-1), 0.0)

    def embed(self, batch: TrajectoryBatch, graph: RoadGraph | None = None) -> Tensor:
        """``(B, d)`` trajectory representations: mean of :meth:`forward` over real positions.

        Raises:
            ValueError: as :meth:`forward`.
        """
        return mean_pool(self.forward(batch, graph), batch.padding_mask)


class TransformerMLMPretrainer(nn.Module):
    """:class:`TransformerMLMEncoder` plus the masked-road prediction head (BERT's MLM objective).

    Attributes:
        encoder: the encoder.
        road_head: ``Linear(d, N)``, road-id logits.
        config: hyper-parameters.

    Args:
        num_segments: N.
        config: hyper-parameters (defaults if None).
    """

    def __init__(self, num_segments: int, config: TransformerMLMConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else TransformerMLMConfig()
        self.encoder = TransformerMLMEncoder(num_segments, self.config)
        self.road_head = nn.Linear(self.config.d_model, num_segments)

    def loss(self, batch: TrajectoryBatch, graph: RoadGraph | None, generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        """Masked-road prediction loss of one batch.

        Args:
            batch: ``(B, L)`` trajectories with their true roads.
            graph: the city's road graph (size check only).
            generator: CPU generator for the mask (:func:`random_position_mask`).

        Returns:
            ``(loss, stats)``: mean cross-entropy (nats) over masked positions among the N
            classes; ``stats`` = ``loss``, ``road_acc`` (fraction of masked roads predicted
            right), ``n_masked``.

        Raises:
            ValueError: as :meth:`TransformerMLMEncoder.forward`.
        """
        mask = random_position_mask(batch.padding_mask, self.config.mask_ratio, generator)
        z = self.encoder(batch, graph, mask)  # (B, L, d)
        logits = self.road_head(z[mask])  # (M, N)
        targets = batch.roads[mask]
        loss = F.cross_entropy(logits, targets)
        acc = float((logits.argmax(dim=-1) == targets).float().mean())
        return loss, {"loss": float(loss.detach()), "road_acc": acc, "n_masked": float(mask.sum())}
