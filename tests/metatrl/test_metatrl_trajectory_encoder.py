"""Knowledge-fusion trajectory encoder (MetaTRL eqs. 15-18)."""
from __future__ import annotations

import pytest
import torch

from trajzoo.nn.positional import sinusoidal_position_encoding
from trajzoo_metatrl.parameters import classify_or_raise, shared_parameters
from trajzoo_metatrl.trajectory_encoder import KnowledgeFusionLayer, KnowledgeFusionTrajectoryEncoder

D = 16


def _encoder(use_knowledge_fusion: bool = True) -> KnowledgeFusionTrajectoryEncoder:
    torch.manual_seed(0)
    return KnowledgeFusionTrajectoryEncoder(
        D, n_layers=2, n_heads=4, ffn_dim=32, use_knowledge_fusion=use_knowledge_fusion
    )


def _inputs(lengths: list[int], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(len(lengths), length, D, generator=gen)
    pad = torch.arange(length)[None] >= torch.tensor(lengths)[:, None]
    return x, pad


@pytest.mark.parametrize("use_knowledge_fusion", [True, False])
def test_shape_and_padding_zeroed(use_knowledge_fusion: bool) -> None:
    enc = _encoder(use_knowledge_fusion)
    x, pad = _inputs([7, 3, 1], 7)
    z = enc(x, pad)
    assert z.shape == (3, 7, D)
    assert torch.isfinite(z).all()
    assert torch.equal(z[pad], torch.zeros(int(pad.sum()), D))
    classify_or_raise(enc)


@pytest.mark.parametrize("use_knowledge_fusion", [True, False])
def test_padding_invariance(use_knowledge_fusion: bool) -> None:
    enc = _encoder(use_knowledge_fusion)
    x, pad = _inputs([6, 4, 2], 6)
    z = enc(x, pad)
    garbage = torch.randn(3, 5, D) * 100.0
    x_long = torch.cat([x, garbage], dim=1)
    pad_long = torch.cat([pad, torch.ones(3, 5, dtype=torch.bool)], dim=1)
    # also scramble the values already sitting at padded positions
    x_long[:, :6][pad] = torch.randn(int(pad.sum()), D) * 100.0
    z_long = enc(x_long, pad_long)
    assert torch.allclose(z_long[:, :6][~pad], z[~pad], atol=1e-5)


def test_shared_and_private_paths() -> None:
    fusion = shared_parameters(_encoder(True))
    assert any(".shared_w_q." in n for n in fusion) and any(".shared_view." in n for n in fusion)
    assert not any("w_v" in n for n in fusion)
    plain = shared_parameters(_encoder(False))
    # the plain ablation keeps only the components the paper does not classify shared
    assert "shared_road_mask_token" in plain
    assert not any("w_q" in n or "w_k" in n or "w_v" in n or "view" in n for n in plain)


def test_query_key_use_shared_view_value_private_view() -> None:
    """Eq. 17: the private view feeds V only, so it cannot change the attention pattern."""
    torch.manual_seed(0)
    layer = KnowledgeFusionLayer(D, n_heads=2, ffn_dim=32)
    h = torch.randn(2, 5, D)
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    before_weights, before_out = layer.attention_weights(h, pad), layer(h, pad)
    assert torch.allclose(before_weights.sum(-1), torch.ones(2, 2, 5))
    assert torch.all(before_weights[1, :, :, 3:] == 0)
    with torch.no_grad():
        layer.private_view.fc2.weight.add_(1.0)
    assert torch.allclose(layer.attention_weights(h, pad), before_weights)
    assert not torch.allclose(layer(h, pad), before_out)
    with torch.no_grad():
        layer.shared_view.fc2.weight.add_(1.0)
    assert not torch.allclose(layer.attention_weights(h, pad), before_weights)


def test_embed_inputs_uses_mask_token() -> None:
    enc = _encoder()
    road_embeddings = torch.randn(10, D)
    roads = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    times = torch.randn(2, 4, D)
    mask = torch.tensor([[False, True, True, False], [False, True, False, False]])
    x = enc.embed_inputs(road_embeddings, roads, times, mask)
    pe = sinusoidal_position_encoding(4, D)
    expected = road_embeddings[roads] + times + pe
    expected[mask] = enc.road_mask_token.detach() + (times + pe)[mask]
    assert torch.allclose(x, expected)
    other_roads = roads.clone()
    other_roads[mask] = 9
    assert torch.equal(enc.embed_inputs(road_embeddings, other_roads, times, mask), x)


def test_invalid_sizes_raise() -> None:
    with pytest.raises(ValueError, match="divisible"):
        KnowledgeFusionTrajectoryEncoder(D, n_heads=3)
    enc = _encoder()
    with pytest.raises(ValueError):
        enc(torch.randn(2, 4, D), torch.zeros(2, 5, dtype=torch.bool))
