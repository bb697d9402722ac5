"""Modality-mixing Transformer layer: four modality tokens of a point -> one point token.

Source: TransferTraj paper, section "Point Modality Extraction" (the modality-mixing Transformer
that fuses the spatial, temporal, POI and road modalities of each point into one point
embedding). Design used here (the paper gives no more detail than "a Transformer layer over the
modalities of a point"):

1. a learned modality-type embedding ``m_j`` is added to each token: ``e_ij = tok_ij + m_j``
   (j over the 4 modalities);
2. multi-head self-attention across the 4 tokens of the SAME point (points never interact here),
   pre-LayerNorm, residual: ``u_ij = e_ij + MHA(LN(e_i))_j``;
3. mean pooling over the 4 tokens: ``p_i = (1/4) sum_j u_ij``. Because pooling is linear, it is
   computed as ``mean_j e_ij + W_o mean_j attn_ij`` (one output projection per point instead of
   four; identical result, a quarter of that matmul);
4. a point-level feed-forward block, pre-LayerNorm, residual: ``h_i = p_i + FFN(LN(p_i))``.

Only the real (non-padding) points are computed.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ModalityMixingLayer(nn.Module):
    """Fuse the ``(B, L, 4, d)`` modality tokens into ``(B, L, d)`` point tokens.

    Args:
        d_model: token size d.
        heads: attention heads across the 4 modality tokens (d divisible by heads).
        ffn_dim: hidden size of the point feed-forward block.
        dropout: dropout on the attention and FFN outputs.
        n_modalities: number of tokens per point (4).
    """

    def __init__(self, d_model: int, heads: int, ffn_dim: int, dropout: float = 0.0, n_modalities: int = 4) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model={d_model} is not divisible by heads={heads}")
        self.d_model, self.heads, self.n_modalities = d_model, heads, n_modalities
        self.modality_type = nn.Parameter(torch.empty(n_modalities, d_model))
        self.norm_tokens = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm_point = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, d_model))
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Small normal modality-type embeddings; default init of the linear and norm layers."""
        nn.init.normal_(self.modality_type, std=0.1)
        for m in (self.norm_tokens, self.qkv, self.out, self.norm_point, self.ffn[0], self.ffn[2]):
            m.reset_parameters()

    def mix(self, tokens: Tensor) -> Tensor:
        """Mix the tokens of N points.

        Args:
            tokens: ``(N, M, d)`` modality tokens of N points (M = 4 modalities).

        Returns:
            ``(N, d)`` point tokens.
        """
        n, m, d = tokens.shape
        h, dh = self.heads, d // self.heads
        e = tokens + self.modality_type
        q, k, v = self.qkv(self.norm_tokens(e)).view(n, m, 3, h, dh).unbind(dim=2)  # each (N, M, h, dh)
        scores = torch.einsum("nqhd,nkhd->nhqk", q, k) / math.sqrt(dh)  # (N, h, Mq, Mk)
        weights = torch.softmax(scores, dim=-1).mean(dim=2)  # (N, h, Mk): mean over the queries
        pooled_attn = torch.einsum("nhk,nkhd->nhd", weights, v).reshape(n, d)
        p = e.mean(dim=1) + self.dropout(self.out(pooled_attn))
        return p + self.dropout(self.ffn(self.norm_point(p)))

    def forward(self, tokens: Tensor, padding_mask: Tensor) -> Tensor:
        """Point tokens of a padded batch.

        Args:
            tokens: ``(B, L, 4, d)`` from :class:`~trajzoo_transfertraj.modalities.PointModalityExtractor`.
            padding_mask: ``(B, L)`` bool, True at padding.

        Returns:
            ``(B, L, d)``; zero at padding.
        """
        b, l, _, d = tokens.shape
        out = tokens.new_zeros(b, l, d)
        valid = ~padding_mask
        out[valid] = self.mix(tokens[valid])
        return out
