"""Recovery loss values, and a few pretraining steps reduce the recovery loss."""
import pytest
import torch

from trajzoo_transfertraj.masking import config_masks
from trajzoo_transfertraj.model import TransferTraj
from trajzoo_transfertraj.objective import pretraining_loss, recovery_loss
from trajzoo_transfertraj.parameters import TransferTrajConfig

from transfertraj_toy import build_batch


def test_recovery_loss_by_hand():
    batch = build_batch([4], seed=0)
    s = torch.tensor([[False, False, True, True]])
    t = torch.tensor([[False, True, False, False]])
    q = batch.with_masks(s, t)
    pred = {"xy": q.xy.clone(), "t_minutes": q.t_minutes.clone()}
    pred["xy"][0, 2] += torch.tensor([300.0, -400.0])  # 0.3 and 0.4 km
    pred["xy"][0, 0] += 10_000.0  # visible point: not scored
    pred["t_minutes"][0, 1] += 2.0
    loss, stats = recovery_loss(pred, q, spatial_weight=1.0, temporal_weight=0.5)
    xy = (0.3 ** 2 + 0.4 ** 2) / 4  # mean over 2 hidden points x 2 axes, km^2
    assert stats["xy_mse_km2"] == pytest.approx(xy, rel=1e-5)
    assert stats["t_mse_min2"] == pytest.approx(4.0, rel=1e-5)
    assert loss.item() == pytest.approx(xy + 0.5 * 4.0, rel=1e-5)
    assert (stats["n_spatial"], stats["n_temporal"]) == (2.0, 1.0)
    empty, st = recovery_loss(pred, batch)
    assert empty.item() == 0.0 and st["n_spatial"] == 0.0


def test_pretraining_steps_reduce_recovery_loss():
    torch.manual_seed(0)
    cfg = TransferTrajConfig(d_model=32, ffn_dim=32, max_len=32)
    model = TransferTraj(cfg)
    batch = build_batch([24] * 16 + [12] * 8, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def fixed_eval():
        model.eval()
        s, t, _ = config_masks(cfg, batch.padding_mask, torch.Generator().manual_seed(123))
        q = batch.with_masks(s, t)
        with torch.no_grad():
            return recovery_loss(model.predict(q.visible()), q)[0].item()

    before = fixed_eval()
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        model.train()
        loss, stats = pretraining_loss(model, batch, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = fixed_eval()
    assert after < 0.9 * before, (before, after)  # (0.7 held only while the hidden context leaked)
    assert stats["load_balance"] >= 1.0 - 1e-6
    assert 0.0 <= stats["span_fraction"] <= 1.0
