"""Point modality extraction: missing-context tokens, mask tokens, mixing."""
from dataclasses import replace

import torch

from trajzoo_transfertraj.modalities import PointModalityExtractor
from trajzoo_transfertraj.modality_mixing import ModalityMixingLayer

from transfertraj_toy import build_batch


def test_missing_context_uses_learned_tokens():
    torch.manual_seed(0)
    ext = PointModalityExtractor(16)
    no_poi = build_batch([6, 4], seed=0, has_poi=False, has_road=True)
    no_road = build_batch([6, 4], seed=0, has_poi=True, has_road=False)
    real = ~no_poi.padding_mask
    tok = ext(no_poi)
    assert torch.allclose(tok[..., 2, :][real], ext.poi_missing.expand(int(real.sum()), 16))
    tok2 = ext(no_road)
    assert torch.allclose(tok2[..., 3, :][real], ext.road_missing.expand(int(real.sum()), 16))
    # with data, the POI/road tokens differ from the missing tokens and depend on the categories
    assert (tok2[..., 2, :][real] - ext.poi_missing).abs().max() > 1e-3
    changed = replace(no_road, poi_category=(no_road.poi_category + 1) % 14)
    assert (ext(changed)[..., 2, :] - tok2[..., 2, :])[real].abs().max() > 1e-3
    # category ids are ignored when the city has no POI data
    assert torch.equal(ext(replace(no_poi, poi_category=torch.ones_like(no_poi.poi_category)))[..., 2, :], tok[..., 2, :])


def test_hidden_modalities_use_mask_tokens_and_padding_is_zero():
    torch.manual_seed(0)
    ext = PointModalityExtractor(16)
    b = build_batch([5, 3], seed=1)
    s = torch.zeros_like(b.padding_mask)
    s[0, 2] = True
    t = torch.zeros_like(b.padding_mask)
    t[1, 1] = True
    tok = ext(b.with_masks(s, t))
    assert torch.allclose(tok[0, 2, 0], ext.spatial_mask_token)
    assert torch.allclose(tok[1, 1, 1], ext.temporal_mask_token)
    assert not torch.allclose(tok[0, 3, 0], ext.spatial_mask_token)
    assert torch.equal(tok[1, 3:], torch.zeros_like(tok[1, 3:]))


def test_mixing_layer_pools_per_point():
    torch.manual_seed(0)
    mix = ModalityMixingLayer(16, 4, 32)
    tokens = torch.randn(2, 3, 4, 16)
    pad = torch.tensor([[False, False, True], [False, False, False]])
    out = mix(tokens, pad)
    assert out.shape == (2, 3, 16) and torch.equal(out[0, 2], torch.zeros(16))
    # a point's output depends only on its own tokens
    tokens2 = tokens.clone()
    tokens2[1, 0] += 1.0
    out2 = mix(tokens2, pad)
    assert torch.allclose(out2[1, 1:], out[1, 1:]) and (out2[1, 0] - out[1, 0]).abs().max() > 1e-3
    # equals an explicit per-token attention followed by mean pooling (the documented equations)
    e = tokens[1, 1] + mix.modality_type
    q, k, v = mix.qkv(mix.norm_tokens(e)).view(4, 3, 4, 4).unbind(1)
    attn = torch.softmax(torch.einsum("qhd,khd->hqk", q, k) / 2.0, -1) @ v.transpose(0, 1)  # (h, 4, dh)
    u = e + mix.out(attn.transpose(0, 1).reshape(4, 16))
    p = u.mean(0)
    assert torch.allclose(out[1, 1], p + mix.ffn(mix.norm_point(p)), atol=1e-5)
