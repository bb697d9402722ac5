"""Self-supervised pre-training objective of MetaTRL (paper eqs. 19-20).

Linear heads on Z (eq. 19): road logits Z W_fm + b_fm over the N segments of the city and a time
regression Z W_tm + b_tm. Loss (eq. 20): L = gamma * CE(span-masked roads) + (1 - gamma) *
MSE(time-masked times), the time target being minutes since the trip start
(``batch.seconds / 60``), because the core provides no absolute timestamp in another unit and
minutes keep the regression target near unit scale for typical trips.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trajzoo.data.batch import RoadGraph, TrajectoryBatch, hide_times
from trajzoo.nn.span_mask import span_mask

from .masking import time_mask
from .model import MetaTRLConfig, MetaTRLEncoder


class MetaTRLPretrainer(nn.Module):
    """MetaTRL encoder plus the pre-training heads of eq. 19 (both private: they depend on the city).

    Attributes:
        encoder: :class:`MetaTRLEncoder`.
        private_road_head: ``Linear(d, N)``, road recovery logits (Z W_fm + b_fm).
        private_time_head: ``Linear(d, 1)``, minutes since trip start (Z W_tm + b_tm).
        config: the :class:`MetaTRLConfig`.

    Args:
        num_segments: N, road segments of the city.
        attribute_dim: F_u, road attribute columns.
        config: hyper-parameters (defaults if None).
    """

    def __init__(self, num_segments: int, attribute_dim: int, config: MetaTRLConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else MetaTRLConfig()
        self.encoder = MetaTRLEncoder(num_segments, attribute_dim, self.config)
        self.private_road_head = nn.Linear(self.config.d_model, num_segments)
        self.private_time_head = nn.Linear(self.config.d_model, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the encoder and both heads."""
        self.encoder.reset_parameters()
        self.private_road_head.reset_parameters()
        self.private_time_head.reset_parameters()

    def forward(
        self, batch: TrajectoryBatch, graph: RoadGraph, road_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Both predictions at every position (eq. 19).

        Args:
            batch: ``(B, L)`` trajectories (times already hidden by the caller if needed).
            graph: the city's road graph.
            road_mask: optional ``(B, L)`` bool span mask passed to the encoder.

        Returns:
            ``(road_logits, minutes)``: ``(B, L, N)`` logits and ``(B, L)`` predicted minutes
            since the trip start.

        Raises:
            ValueError: as :meth:`MetaTRLEncoder.forward`.
        """
        z = self.encoder(batch, graph, road_mask)
        return self.private_road_head(z), self.private_time_head(z).squeeze(-1)

    def loss(
        self, batch: TrajectoryBatch, graph: RoadGraph, generator: torch.Generator
    ) -> tuple[Tensor, dict[str, float]]:
        """Pre-training loss L^pre of eq. 20 with dual-modal masking.

        Steps: span mask (ratio ``mask_ratio``, mean span ``mean_span_length``); time mask over the
        remaining positions (``time_mask_ratio``) unless ``use_time_mask`` is False; timestamps
        of both sets hidden with ``hide_times``; encode with the span mask as road mask; heads
        evaluated at the masked positions only.

        Args:
            batch: ``(B, L)`` trajectories with their true roads and times.
            graph: the city's road graph.
            generator: CPU ``torch.Generator`` for the masks.

        Returns:
            ``(loss, stats)``: scalar loss ``gamma * road_ce + (1 - gamma) * time_mse``
            (``road_ce`` alone when ``use_time_mask`` is False); a term whose mask is empty is 0
            (still connected to the graph, so ``backward`` works). ``stats`` holds floats
            ``loss``, ``road_ce`` (nats), ``time_mse`` (minutes^2), ``road_acc`` (fraction of
            span-masked roads whose arg-max is right; 0 if none), ``n_road_masked`` and
            ``n_time_masked``.

        Raises:
            ValueError: as :meth:`MetaTRLEncoder.forward`.
        """
        cfg = self.config
        road_mask = span_mask(batch.padding_mask, cfg.mask_ratio, cfg.mean_span_length, generator)
        if cfg.use_time_mask:
            times_mask = time_mask(batch.padding_mask, road_mask, cfg.time_mask_ratio, generator)
        else:
            times_mask = torch.zeros_like(road_mask)
        hidden = hide_times(batch, road_mask | times_mask)
        z = self.encoder(hidden, graph, road_mask)  # (B, L, d)
        zero = z.sum() * 0.0  # graph-connected zero for empty mask sets

        n_road = int(road_mask.sum())
        if n_road:
            logits = self.private_road_head(z[road_mask])  # (M, N)
            targets = batch.roads[road_mask]
            road_ce = F.cross_entropy(logits, targets)
            road_acc = float((logits.argmax(dim=-1) == targets).float().mean())
        else:
            road_ce, road_acc = zero, 0.0

        n_time = int(times_mask.sum())
        if n_time:
            predicted = self.private_time_head(z[times_mask]).squeeze(-1)
            target = batch.seconds[times_mask].to(predicted.dtype) / 60.0
            time_mse = F.mse_loss(predicted, target)
        else:
            time_mse = zero

        if cfg.use_time_mask:
            total = cfg.gamma * road_ce + (1.0 - cfg.gamma) * time_mse
        else:
            total = road_ce
        stats = {
            "loss": float(total.detach()),
            "road_ce": float(road_ce.detach()),
            "time_mse": float(time_mse.detach()),
            "road_acc": road_acc,
            "n_road_masked": float(n_road),
            "n_time_masked": float(n_time),
        }
        return total, stats
