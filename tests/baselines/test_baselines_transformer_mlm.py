"""transformer-mlm: shapes, padding invariance, masks never on padding, masked-road loss."""
from __future__ import annotations

import pytest
import torch

from baselines_toy import NUM_SEGMENTS, append_padding, build_batch, build_graph
from baselines_toy import single_thread  # noqa: F401  (autouse fixture)
from trajzoo_baselines.transformer_mlm import (TransformerMLMConfig, TransformerMLMEncoder,
                                               TransformerMLMPretrainer, TransformerMLMSchedule)

CONFIG = TransformerMLMConfig(d_model=16, layers=2, heads=2, ffn_dim=32, dropout=0.0, mask_ratio=0.2)


def _encoder() -> TransformerMLMEncoder:
    torch.manual_seed(0)
    return TransformerMLMEncoder(NUM_SEGMENTS, CONFIG).eval()


def test_shapes_and_zero_padding():
    batch, graph = build_batch([12, 9, 5, 2, 1]), build_graph()
    z = _encoder()(batch, graph)
    assert z.shape == (5, 12, 16)
    assert torch.all(z[batch.padding_mask] == 0)
    assert torch.isfinite(z).all()
    assert _encoder().embed(batch, graph).shape == (5, 16)


def test_padding_invariance():
    batch, graph = build_batch([12, 9, 5, 2, 1]), build_graph()
    enc = _encoder()
    with torch.no_grad():
        z = enc(batch, graph)
        z_pad = enc(append_padding(batch, 6), graph)
        e, e_pad = enc.embed(batch, graph), enc.embed(append_padding(batch, 6), graph)
    assert torch.allclose(z, z_pad[:, :12], atol=1e-5)
    assert torch.all(z_pad[:, 12:] == 0)
    assert torch.allclose(e, e_pad, atol=1e-5)


def test_ignores_time():
    batch, graph = build_batch([8, 6]), build_graph()
    other = build_batch([8, 6], seed=5)
    other.roads = batch.roads
    enc = _encoder()
    with torch.no_grad():
        assert torch.equal(enc(batch, graph), enc(other, graph))


def test_masked_input_uses_mask_token_and_loss_decreases():
    torch.manual_seed(0)
    model = TransformerMLMPretrainer(NUM_SEGMENTS, CONFIG)
    batch, graph = build_batch([12, 9, 5, 2, 1]), build_graph()
    mask = torch.zeros_like(batch.padding_mask)
    mask[0, 3] = True
    with torch.no_grad():
        a = model.encoder(batch, graph, mask)
        b = model.encoder(batch, graph)
    assert not torch.allclose(a[0], b[0])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(15):
        loss, stats = model.loss(batch, graph, torch.Generator().manual_seed(step % 3))
        assert torch.isfinite(loss) and stats["n_masked"] >= 5
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_mask_on_padding_and_bad_ids_are_rejected():
    batch, graph = build_batch([4, 2]), build_graph()
    enc = _encoder()
    bad = batch.padding_mask.clone()
    with pytest.raises(ValueError, match="padded"):
        enc(batch, graph, bad)
    batch.roads[0, 0] = NUM_SEGMENTS
    with pytest.raises(ValueError, match="outside"):
        enc(batch, graph)


def test_config_and_schedule_reject_unknown_keys():
    with pytest.raises(ValueError, match="mask_ration"):
        TransformerMLMConfig.from_dict({"mask_ration": 0.2})
    with pytest.raises(ValueError, match="epoch"):
        TransformerMLMSchedule.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="divisible"):
        TransformerMLMConfig.from_dict({"d_model": 10, "heads": 4})
    assert TransformerMLMSchedule.from_dict({"epochs": 2}).epochs == 2
