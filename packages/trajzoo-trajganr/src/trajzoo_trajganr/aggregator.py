"""Permutation-invariant trajectory aggregator (TrajGANR eqs. 8-9).

Each task location x has K localized trajectory embeddings ``{z_1 .. z_K}`` (eq. 8, from all
trajectories passing it). Eq. 9: ``z_agg = MHSA([CLS ; z_1 .. z_K])[CLS]``: multi-head
self-attention (no positional encoding, padding masked) over a learnable [CLS] token and the
embeddings, followed by a residual feed-forward block, read at [CLS]. With no positional
information and masked padding, permuting the z_k does not change z_agg.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class TrajectoryAggregator(nn.Module):
    """``(b, K, d)`` embeddings + ``(b, K)`` padding mask -> ``(b, d)`` [CLS] output.

    A location with no trajectory (all padding) attends only to [CLS].

    Args:
        d: width. heads: attention heads (divide d).
    """

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        self.norm2 = nn.LayerNorm(d)
        nn.init.normal_(self.cls, std=0.02)

    def forward(self, z: Tensor, padding_mask: Tensor) -> Tensor:
        """Eq. 9: ``(b, K, d)``, ``(b, K)`` bool (True = padding) -> ``(b, d)``."""
        b = z.shape[0]
        x = torch.cat([self.cls.expand(b, -1, -1), z], dim=1)
        pad = torch.cat([torch.zeros_like(padding_mask[:, :1]), padding_mask], dim=1)
        h, _ = self.attn(x, x, x, key_padding_mask=pad, need_weights=False)
        x = self.norm1(x + h)
        x = self.norm2(x + self.ffn(x))
        return x[:, 0]
