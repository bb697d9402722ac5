"""Waypoint tokens and the trajectory encoder with a query token (TrajGANR eqs. 3-5).

Eq. 3: every waypoint i becomes ``e_i = PE_T(x_i) + TE(t_i)`` (trajectory-specific Space2Vec
location encoder plus Time2Vec temporal encoder). Eq. 4: ``z_q = Transformer([e_1 .. e_W ; e_q])``
read at the query token e_q (eq. 5, :mod:`.query_token`): the localized trajectory embedding at
query location x_q, defined for ANY location near the trajectory, not only waypoints (the
trajectory neural implicit function). Padding positions are masked out of attention, so the
output does not depend on how far a window is padded.

The ``segment`` alignment ablation (paper Table 3) replaces z_q by the mean of the waypoint
outputs (no query token) on the location's stretch of road: the real fixes within a radius of
the location, or, when none is that close, the two fixes of the path segment nearest to it.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from trajzoo.nn.pooling import mean_pool

from .parameters import TrajGANRConfig
from .query_token import QueryToken, synthetic_query_time
from .space2vec import LocationEncoder
from .time2vec import TemporalEncoder
from .windows import WindowBatch


class TrajectoryEncoder(nn.Module):
    """Eqs. 3-5: ``localized(batch, q_xy, q_m) -> (B, d)``; ``segment_pooled(...) -> (B, d)``.

    Args:
        cfg: :class:`~trajzoo_trajganr.parameters.TrajGANRConfig`.
    """

    def __init__(self, cfg: TrajGANRConfig):
        super().__init__()
        self.location = LocationEncoder(cfg.d_model, cfg.min_scale, cfg.max_scale, cfg.num_scales)  # PE_T
        self.time = TemporalEncoder(cfg.time2vec_dim, cfg.d_model)  # TE
        self.query = QueryToken(cfg.d_model, cfg.query_time)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, cfg.ffn_dim, cfg.dropout, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.d_model = cfg.d_model

    def tokens(self, batch: WindowBatch) -> Tensor:
        """Eq. 3: ``(B, W, d)`` waypoint tokens (0 at padding)."""
        e = self.location(batch.xy) + self.time(batch.elapsed_min, batch.hour)
        return e.masked_fill(batch.padding_mask.unsqueeze(-1), 0.0)

    def query_tokens(self, batch: WindowBatch, q_xy: Tensor, q_m: Tensor) -> Tensor:
        """Eq. 5: ``(B, d)`` query tokens at normalised ``q_xy`` (metres ``q_m`` for the
        synthetic-time interpolation)."""
        time_emb = None
        if self.query.query_time == "synthetic":
            el, hr = synthetic_query_time(batch.xy_m, batch.elapsed_min, batch.hour, batch.padding_mask, q_m)
            time_emb = self.time(el, hr)
        return self.query(self.location(q_xy), time_emb)

    def localized(self, batch: WindowBatch, q_xy: Tensor, q_m: Tensor) -> Tensor:
        """Eq. 4: the Transformer over ``[e_1 .. e_W ; e_q]``, output at e_q: ``(B, d)``.

        Args:
            batch: B windows. q_xy: ``(B, 2)`` normalised query locations. q_m: ``(B, 2)`` metres.
        """
        seq = torch.cat([self.tokens(batch), self.query_tokens(batch, q_xy, q_m).unsqueeze(1)], dim=1)
        pad = torch.cat([batch.padding_mask, torch.zeros_like(batch.padding_mask[:, :1])], dim=1)
        return self.transformer(seq, src_key_padding_mask=pad)[:, -1]

    def segment_pooled(self, batch: WindowBatch, q_m: Tensor, radius_m: float) -> Tensor:
        """Segment-based alignment (Table 3): mean of the Transformer's waypoint outputs (no query
        token) over the real fixes within ``radius_m`` metres of ``q_m`` (``(B, 2)``), or the two
        fixes of the nearest path segment when none is that close: ``(B, d)``."""
        h = self.transformer(self.tokens(batch), src_key_padding_mask=batch.padding_mask)
        d = ((batch.xy_m - q_m.double().unsqueeze(1)) ** 2).sum(-1).sqrt().masked_fill(batch.padding_mask, float("inf"))
        near = d <= radius_m
        k = d.argmin(dim=1)
        nearest = torch.zeros_like(near)
        nearest.scatter_(1, k.unsqueeze(1), True)
        nxt = (k + 1).clamp(max=near.shape[1] - 1)
        nearest.scatter_(1, nxt.unsqueeze(1), True)
        nearest &= ~batch.padding_mask
        sel = torch.where(near.any(dim=1, keepdim=True), near, nearest)
        return mean_pool(h, ~sel)
