"""The TransferTraj model: modality extraction, modality mixing, RTTE, trajectory modality predictor.

Source: TransferTraj paper, Figure 2 (overall architecture) and section "Unified Task-Transferable
Input-Output Scheme". Pipeline for a :class:`~trajzoo.data.points.PointBatch`::

    tokens  = PointModalityExtractor(batch)                 (B, L, 4, d)   hidden modalities -> mask tokens
    h0      = ModalityMixing(tokens) + IndexEncoding(i)     (B, L, d)
              [+ AbsoluteXYEncoding(origin + P) when use_trie=False: absolute city-frame x, y]
    H       = RTTE(h0, P)                                   (B, L, d)  SC-MoE routes on the tokens
    xy_hat  = P + spatial_scale_m * W_xy H                  (B, L, 2) metres
    t_hat   = T + time_scale_min * W_t H                    (B, L)    minutes

P are the reference positions (:func:`~trajzoo_transfertraj.trie.reference_positions` of the
visible x, y) and T the reference times (same interpolation of the visible elapsed times), so the
predictor outputs residuals with respect to what the visible points imply. The sinusoidal
point-index encoding (:func:`trajzoo.nn.positional.sinusoidal_table`) gives the order of the points, which every task reveals (a design choice:
without it, hidden points at the end of a trajectory with hidden times would be indistinguishable).

Contexts the pretraining never saw: a context kind (POI, road) that no pretraining city had would
reach the target with embeddings that never received a gradient. The persistent buffer
``context_used`` (2,) bool (POI, road; True for a fresh model) records which kinds the
pretraining data had (set by :func:`~trajzoo_transfertraj.training.pretrain`); a kind not in it
is treated as absent everywhere (the trained "missing" token), so every parameter used at a
target was trained on the sources. With ``context_dropout`` the "missing" tokens are trained even
when every source city has the context.

The model reads only visible values: :meth:`TransferTraj.forward` applies
:meth:`PointBatch.visible` itself, so a caller cannot leak hidden x, y, times, or the context
(road class, lanes, maxspeed, POI category and count, road km) computed at a hidden location;
hidden points get the learned "masked context" tokens. The attention is causal by default
(``causal``, the paper's public code).
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from trajzoo.data.points import PointBatch
from trajzoo.nn.pooling import mean_pool
from trajzoo.nn.positional import sinusoidal_table

from .encoder import RTTE
from .modalities import PointModalityExtractor
from .modality_mixing import ModalityMixingLayer
from .parameters import TransferTrajConfig
from .trie import AbsoluteXYEncoding, reference_positions


class TransferTraj(nn.Module):
    """TransferTraj (arXiv 2505.12672) for raw GPS trajectories.

    Args:
        config: hyper-parameters (defaults if None).

    Attributes:
        config: the :class:`TransferTrajConfig`. d_model: d.
        context_used: ``(2,)`` bool buffer, the context kinds (POI, road) the model uses.
    """

    def __init__(self, config: TransferTrajConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else TransferTrajConfig()
        cfg = self.config
        self.d_model = cfg.d_model
        self.modalities = PointModalityExtractor(cfg.d_model, cfg.spatial_scale_m, cfg.time_scale_min)
        self.mixing = ModalityMixingLayer(cfg.d_model, cfg.heads, cfg.ffn_dim, cfg.dropout)
        self.register_buffer("index_encoding", sinusoidal_table(cfg.max_len, cfg.d_model), persistent=False)
        self.absolute_xy = (AbsoluteXYEncoding(cfg.d_model, cfg.trie_min_wavelength_m, cfg.trie_max_wavelength_m)
                            if not cfg.use_trie else None)
        self.encoder = RTTE(cfg)
        self.register_buffer("context_used", torch.ones(2, dtype=torch.bool))
        self.xy_head = nn.Linear(cfg.d_model, 2)
        self.t_head = nn.Linear(cfg.d_model, 1)
        self.reset_heads()

    def reset_heads(self) -> None:
        """Predictor heads start at zero residual (prediction = reference position / time)."""
        for head in (self.xy_head, self.t_head):
            nn.init.normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)

    def set_context_used(self, poi: bool, road: bool) -> None:
        """Record which context kinds the pretraining data has (see the module docstring)."""
        self.context_used.copy_(torch.tensor([bool(poi), bool(road)]))

    def _validate(self, batch: PointBatch) -> None:
        b, l = batch.padding_mask.shape
        if l > self.config.max_len:
            raise ValueError(f"batch has {l} points per trajectory, model max_len is {self.config.max_len}")
        expected = {"xy": (b, l, 2), "t_minutes": (b, l), "minute_of_day": (b, l), "day_of_week": (b, l),
                    "road_class": (b, l), "road_lanes": (b, l), "road_maxspeed": (b, l), "poi_category": (b, l),
                    "context": (b, l, 2), "has_context": (b, l, 2), "spatial_mask": (b, l), "temporal_mask": (b, l)}
        for name, shape in expected.items():
            got = tuple(getattr(batch, name).shape)
            if got != shape:
                raise ValueError(f"batch.{name} has shape {got}, expected {shape} (city {batch.city})")
        if b and bool(batch.padding_mask[:, 0].any()):
            raise ValueError(f"every trajectory needs at least one point (city {batch.city})")

    def encode(self, batch: PointBatch) -> tuple[Tensor, Tensor, Tensor]:
        """Encode a batch and return what the predictor needs.

        Args:
            batch: ``(B, L)`` points; hidden values are never read.

        Returns:
            ``(H, P, T)``: H ``(B, L, d)`` (zero at padding), P ``(B, L, 2)`` reference positions in
            metres, T ``(B, L)`` reference elapsed minutes.

        Raises:
            ValueError: inconsistent shapes, more than ``max_len`` points, an empty trajectory,
                category ids outside their vocabularies, or (``use_trie=False``) no ``origin``.
        """
        self._validate(batch)
        batch = batch.visible()
        batch = replace(batch, has_context=batch.has_context & self.context_used.to(batch.has_context.device))
        pad = batch.padding_mask
        pos = reference_positions(batch.xy.float(), batch.spatial_mask, pad)
        ref_t = reference_positions(batch.t_minutes.float().unsqueeze(-1), batch.temporal_mask, pad).squeeze(-1)
        h = self.mixing(self.modalities(batch), pad)
        h = h + self.index_encoding[: h.shape[1]]
        if self.absolute_xy is not None:
            if batch.origin is None:
                raise ValueError(f"use_trie=False encodes absolute positions: the batch needs origin (city {batch.city})")
            h = h + self.absolute_xy(pos.double() + batch.origin.to(pos.device).double().unsqueeze(1))
        h = h.masked_fill(pad.unsqueeze(-1), 0.0)
        return self.encoder(h, pos, pad), pos, ref_t

    def forward(self, batch: PointBatch) -> Tensor:
        """Point representations ``(B, L, d)`` (zero at padding). Raises as :meth:`encode`."""
        return self.encode(batch)[0]

    def embed(self, batch: PointBatch) -> Tensor:
        """Trajectory representations ``(B, d)``: mean of :meth:`forward` over real points
        (:func:`trajzoo.nn.pooling.mean_pool`)."""
        return mean_pool(self.forward(batch), batch.padding_mask)

    def predict(self, batch: PointBatch) -> dict[str, Tensor]:
        """Trajectory modality predictor: recover x, y and time of every point.

        Args:
            batch: ``(B, L)`` points with ``spatial_mask`` / ``temporal_mask`` marking what is
                hidden (values there are ignored).

        Returns:
            ``{"xy": (B, L, 2) metres relative to the first point, "t_minutes": (B, L) minutes since
            the first point}``; 0 at padding. Gradients flow (call under ``torch.no_grad()`` for
            inference).

        Raises:
            ValueError: as :meth:`encode`.
        """
        h, pos, ref_t = self.encode(batch)
        cfg = self.config
        xy = pos + cfg.spatial_scale_m * self.xy_head(h)
        t = ref_t + cfg.time_scale_min * self.t_head(h).squeeze(-1)
        pad = batch.padding_mask
        return {"xy": xy.masked_fill(pad.unsqueeze(-1), 0.0), "t_minutes": t.masked_fill(pad, 0.0)}

    def load_balance(self) -> Tensor:
        """Mean over blocks of the SC-MoE load-balancing term LB of the last forward (unweighted;
        1 = uniform routing). 0 without SC-MoE."""
        layers = self.encoder.moe_layers()
        if not layers:
            return self.xy_head.weight.new_zeros(())
        return torch.stack([m.last_load_balance for m in layers]).mean()

    def auxiliary_loss(self) -> Tensor:
        """``load_balance_weight * load_balance()`` of the last forward, to add to any training
        loss (pretraining or fine-tuning). A graph-connected scalar; 0 without SC-MoE."""
        return self.config.load_balance_weight * self.load_balance()

    def expert_usage(self, cumulative: bool = False) -> Tensor:
        """``(blocks, C)`` long: real points routed to each expert of each block, in the last
        forward (each row sums to k times the number of real points) or, with ``cumulative``,
        since :meth:`reset_expert_usage`. Shape ``(0, C)`` without SC-MoE."""
        layers = self.encoder.moe_layers()
        if not layers:
            return torch.zeros(0, self.config.experts, dtype=torch.long)
        return torch.stack([(m.usage_totals.cpu() if cumulative else m.last_usage) for m in layers])

    def reset_expert_usage(self) -> None:
        """Zero the cumulative expert-usage counts of every block."""
        for m in self.encoder.moe_layers():
            m.reset_usage()

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
