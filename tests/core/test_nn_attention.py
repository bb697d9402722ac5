"""trajzoo.nn.attention: head splitting and key-padding-masked attention weights."""
from __future__ import annotations

import math

import torch

from trajzoo.nn.attention import attention_weights, split_fused_qkv, split_heads


def test_split_heads_and_fused_qkv_layout() -> None:
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    heads = split_heads(x, 2)
    assert heads.shape == (2, 2, 3, 2)
    assert torch.equal(heads[1, 1, 2], x[1, 2, 2:4])
    qkv = torch.cat([x, 10 + x, 100 + x], dim=-1)  # [Q | K | V]
    q, k, v = split_fused_qkv(qkv, 2)
    assert torch.equal(q, heads) and torch.equal(k, 10 + heads) and torch.equal(v, 100 + heads)


def test_attention_weights_hand_computed_with_padding_and_bias() -> None:
    q = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])  # (B=1, H=1, L=2, d_head=2)
    k = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    no_pad = torch.tensor([[False, False]])
    w = attention_weights(q, k, no_pad)
    s = 1.0 / math.sqrt(2.0)  # q0.k0 / sqrt(2); every other score is 0
    expected0 = torch.tensor([math.exp(s), 1.0]) / (math.exp(s) + 1.0)
    assert torch.allclose(w[0, 0, 0], expected0) and torch.allclose(w[0, 0, 1], torch.tensor([0.5, 0.5]))
    bias = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])  # row 1: scores (0, log 3)
    assert torch.allclose(attention_weights(q, k, no_pad, bias)[0, 0, 1], torch.tensor([0.25, 0.75]))
    padded = attention_weights(q, k, torch.tensor([[False, True]]))
    assert torch.equal(padded[0, 0, :, 1], torch.zeros(2)) and torch.allclose(padded.sum(-1), torch.ones(1, 1, 2))
    finite = attention_weights(q, k, torch.tensor([[True, True]]), fill_value=torch.finfo(q.dtype).min)
    assert torch.isfinite(finite).all()
