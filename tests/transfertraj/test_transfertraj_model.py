"""TransferTraj forward/predict: shapes, units, no leakage, padding, determinism."""
from dataclasses import replace

import pytest
import torch

from trajzoo_transfertraj.model import TransferTraj
from trajzoo_transfertraj.parameters import TransferTrajConfig

from transfertraj_toy import build_batch, pad_batch


def _zero_heads(model):
    with torch.no_grad():
        for head in (model.xy_head, model.t_head):
            head.weight.zero_()
            head.bias.zero_()


def test_shapes_and_units(small_config):
    torch.manual_seed(0)
    model = TransferTraj(small_config).eval()
    batch = build_batch([12, 7, 1], seed=0)
    assert model(batch).shape == (3, 12, 32)
    assert model.embed(batch).shape == (3, 32)
    pred = model.predict(batch)
    assert pred["xy"].shape == (3, 12, 2) and pred["t_minutes"].shape == (3, 12)
    assert torch.equal(pred["xy"][2, 1:], torch.zeros(11, 2))
    # with zero residual heads, the predictor returns the reference positions (metres) and times
    # (minutes): the visible values themselves, and interpolations for hidden points
    _zero_heads(model)
    s = torch.zeros_like(batch.padding_mask)
    s[0, 3] = True
    t = torch.zeros_like(batch.padding_mask)
    t[1, 6] = True
    pred = model.predict(batch.with_masks(s, t))
    real = ~batch.padding_mask
    assert torch.allclose(pred["xy"][0, [0, 1, 2, 4]], batch.xy[0, [0, 1, 2, 4]])
    assert torch.allclose(pred["xy"][0, 3], (batch.xy[0, 2] + batch.xy[0, 4]) / 2, atol=1e-3)
    assert torch.allclose(pred["t_minutes"][1, 6], batch.t_minutes[1, 5])  # carried forward (last point)
    assert torch.allclose(pred["t_minutes"][real & ~t], batch.t_minutes[real & ~t])


def test_unit_scaling_of_heads(small_config):
    torch.manual_seed(0)
    model = TransferTraj(small_config).eval()
    batch = build_batch([5], seed=0)
    _zero_heads(model)
    with torch.no_grad():
        model.xy_head.bias.copy_(torch.tensor([1.0, -2.0]))  # 1 output unit = spatial_scale_m = 1 km
        model.t_head.bias.fill_(0.5)  # 1 output unit = time_scale_min = 10 minutes
    pred = model.predict(batch)
    assert torch.allclose(pred["xy"] - batch.xy, torch.tensor([1000.0, -2000.0]).expand(1, 5, 2), atol=1e-2)
    assert torch.allclose(pred["t_minutes"] - batch.t_minutes, torch.full((1, 5), 5.0), atol=1e-4)


def test_hidden_values_do_not_leak(small_config):
    torch.manual_seed(0)
    model = TransferTraj(small_config).eval()
    batch = build_batch([10, 8], seed=2)
    s = torch.zeros_like(batch.padding_mask)
    s[:, 5:] = True
    t = torch.zeros_like(batch.padding_mask)
    t[:, 3] = True
    q = batch.with_masks(s, t)
    noisy = replace(q, xy=q.xy + 5000.0 * s.unsqueeze(-1), t_minutes=q.t_minutes + 99.0 * t,
                    minute_of_day=(q.minute_of_day + 300 * t) % 1440, day_of_week=(q.day_of_week + 3 * t) % 7)
    a, b = model.predict(q), model.predict(noisy)
    assert torch.equal(a["xy"], b["xy"]) and torch.equal(a["t_minutes"], b["t_minutes"])
    # a VISIBLE change does change the predictions (the test can fail)
    moved = replace(q, xy=q.xy + 300.0 * (~s & ~q.padding_mask).unsqueeze(-1) * (torch.arange(10) == 2)[None, :, None])
    assert (model.predict(moved)["xy"][:, 5:] - a["xy"][:, 5:]).abs().max() > 1e-3


def test_padding_does_not_change_real_points(small_config):
    torch.manual_seed(0)
    model = TransferTraj(small_config).eval()
    short = build_batch([6, 4], seed=3)
    padded = pad_batch(short, 5)
    assert padded.padding_mask.shape == (2, 11) and int(padded.padding_mask.sum()) == 2 + 10
    a, b = model.predict(short), model.predict(padded)
    assert torch.allclose(a["xy"], b["xy"][:, :6], atol=1e-3)
    assert torch.allclose(a["t_minutes"], b["t_minutes"][:, :6], atol=1e-4)
    assert torch.equal(b["xy"][:, 6:], torch.zeros(2, 5, 2))


def test_same_seed_same_model_and_predictions():
    cfg = TransferTrajConfig(d_model=32, ffn_dim=32, max_len=32)
    torch.manual_seed(7)
    m1 = TransferTraj(cfg)
    torch.manual_seed(7)
    m2 = TransferTraj(cfg)
    torch.manual_seed(8)
    m3 = TransferTraj(cfg)
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    batch = build_batch([9, 4], seed=0)
    # training mode: the gate noise comes from the global RNG, so the same seed repeats it
    torch.manual_seed(1)
    p1 = m1.train().predict(batch)["xy"]
    torch.manual_seed(1)
    p2 = m2.train().predict(batch)["xy"]
    assert torch.equal(p1, p2)
    assert not torch.allclose(p1, m3.train().predict(batch)["xy"])


@pytest.mark.parametrize("ablation", [{"use_trie": False}, {"use_moe": False}])
def test_ablations_run(ablation):
    torch.manual_seed(0)
    model = TransferTraj(TransferTrajConfig(d_model=32, ffn_dim=32, max_len=32, **ablation)).eval()
    batch = build_batch([9, 4], seed=0)
    pred = model.predict(batch)
    assert pred["xy"].shape == (2, 9, 2) and torch.isfinite(pred["xy"]).all()
    if not ablation.get("use_moe", True):
        assert model.expert_usage().shape == (0, 8) and model.auxiliary_loss().item() == 0.0


def test_without_trie_the_encoding_is_absolute_in_the_city_frame():
    """"w/o TRIE" (paper's ablation): the same trajectory elsewhere in the city is encoded
    differently; with TRIE it is not (relative positions only)."""
    batch = build_batch([9, 6], seed=0)
    moved = replace(batch, origin=batch.origin + torch.tensor([1234.0, -777.0], dtype=torch.float64))
    torch.manual_seed(0)
    absolute = TransferTraj(TransferTrajConfig(d_model=32, ffn_dim=32, max_len=32, use_trie=False)).eval()
    assert (absolute.predict(batch)["xy"] - absolute.predict(moved)["xy"]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="origin"):
        absolute.predict(replace(batch, origin=None))
    # the encoding reads exactly origin + reference position (float64 city-frame metres)
    seen = {}
    absolute.absolute_xy.register_forward_pre_hook(lambda m, a: seen.update(pos=a[0]))
    absolute.predict(batch)
    assert torch.allclose(seen["pos"][:, 0], batch.origin) and seen["pos"].dtype == torch.float64
    torch.manual_seed(0)
    relative = TransferTraj(TransferTrajConfig(d_model=32, ffn_dim=32, max_len=32)).eval()
    assert torch.equal(relative.predict(batch)["xy"], relative.predict(moved)["xy"])


def test_invalid_batches_raise(small_config):
    model = TransferTraj(small_config)
    with pytest.raises(ValueError, match="max_len"):
        model.predict(build_batch([70], seed=0))
    bad = build_batch([4], seed=0)
    with pytest.raises(ValueError, match="road_class"):
        model.predict(replace(bad, road_class=bad.road_class + 100))


@pytest.mark.parametrize("causal", [True, False])
def test_causal_attention_over_points(causal):
    """Default (paper's public code): point i attends to points 0..i, so changing a later point
    leaves the earlier representations unchanged; without ``causal`` it does not."""
    torch.manual_seed(0)
    model = TransferTraj(TransferTrajConfig(d_model=32, ffn_dim=32, max_len=32, causal=causal)).eval()
    assert model.config.causal is causal and TransferTrajConfig().causal
    batch = build_batch([10, 10], seed=1)
    later = replace(batch, xy=batch.xy + 500.0 * (torch.arange(10) >= 7)[None, :, None],
                    poi_category=torch.where(torch.arange(10) >= 7, (batch.poi_category + 1) % 14, batch.poi_category))
    a, b = model(batch), model(later)
    change_before = (a[:, :7] - b[:, :7]).abs().max()
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-4
    if causal:
        assert change_before == 0
    else:
        assert change_before > 1e-4


@pytest.mark.parametrize("use_moe", [True, False])
def test_ffn_dim_sizes_every_feed_forward_layer(use_moe):
    cfg = TransferTrajConfig(d_model=32, ffn_dim=24, max_len=32, use_moe=use_moe)
    model = TransferTraj(cfg)
    assert (model.mixing.ffn[0].out_features, model.mixing.ffn[2].in_features) == (24, 24)
    for block in model.encoder.blocks:
        if use_moe:
            assert block.ffn.w1.shape == (cfg.experts, 32, 24) and block.ffn.w2.shape == (cfg.experts, 24, 32)
        else:
            assert (block.ffn.net[0].out_features, block.ffn.net[3].in_features) == (24, 24)
    hidden = {m.out_features for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "ffn" in n
              and "gate" not in n
              and m.out_features != 32}
    assert hidden == {24}
