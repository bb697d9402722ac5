"""Pieces of multi-head scaled dot-product attention shared by the Transformer layers of the zoo
(Vaswani et al. 2017, eq. 1 and section 3.2.2): splitting into heads and the key-padding-masked
softmax weights ``softmax(Q K^T / sqrt(d_head) + bias)``.

Used by MetaTRL's knowledge-fusion layer (eqs. 17-18), START's time-aware self-attention (TAT-Enc,
with the time-interval bias) and TransferTraj's TRIE attention and modality mixing.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def split_heads(x: Tensor, heads: int) -> Tensor:
    """``(B, L, d)`` -> ``(B, heads, L, d / heads)`` (a view; ``d`` divisible by ``heads``)."""
    b, length, d = x.shape
    return x.view(b, length, heads, d // heads).transpose(1, 2)


def split_fused_qkv(qkv: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """Split the output of one ``Linear(d, 3 d)`` projection into per-head Q, K, V.

    Args:
        qkv: ``(B, L, 3 d)``, the concatenation ``[Q | K | V]`` along the last dimension.
        heads: number of heads (``d`` divisible by it).

    Returns:
        ``(q, k, v)``, each ``(B, heads, L, d / heads)``.
    """
    b, length, three_d = qkv.shape
    d = three_d // 3
    q, k, v = qkv.view(b, length, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    return q, k, v


def attention_weights(q: Tensor, k: Tensor, key_padding_mask: Tensor, bias: Tensor | None = None,
                      fill_value: float = float("-inf")) -> Tensor:
    """Attention matrix ``softmax_j(q_i . k_j / sqrt(d_head) + bias_ij)`` over the real keys.

    Args:
        q: ``(B, H, L, d_head)`` queries.
        k: ``(B, H, L, d_head)`` keys.
        key_padding_mask: ``(B, L)`` bool, True at padded keys (never attended to).
        bias: optional additive bias broadcastable to ``(B, H, L, L)`` (e.g. START's time-interval
            bias), added before masking.
        fill_value: score given to padded keys before the softmax (``-inf``; MetaTRL uses the
            dtype's lowest finite value, so an all-padding row stays finite).

    Returns:
        ``(B, H, L, L)``; row i sums to 1 over the real keys, 0 on padded keys.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + bias
    scores = scores.masked_fill(key_padding_mask[:, None, None, :], fill_value)
    return torch.softmax(scores, dim=-1)
