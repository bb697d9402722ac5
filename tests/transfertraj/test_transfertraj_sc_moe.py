"""SC-MoE: exact top-k gating, load balancing, expert usage, dense == sparse dispatch."""
import pytest
import torch

from trajzoo_transfertraj.model import TransferTraj
from trajzoo_transfertraj.sc_moe import NoisyTopKGate, SCMoE, load_balance_loss

from transfertraj_toy import build_batch


def test_gate_picks_exactly_top_k_of_eight():
    torch.manual_seed(0)
    gate = NoisyTopKGate(experts=8, top_k=4).eval()
    s = torch.randn(50, 4)
    gates, idx, probs = gate(s)
    assert gates.shape == (50, 8) and idx.shape == (50, 4)
    assert torch.equal((gates > 0).sum(dim=1), torch.full((50,), 4))
    assert torch.allclose(gates.sum(dim=1), torch.ones(50), atol=1e-6)
    assert torch.allclose(probs.sum(dim=1), torch.ones(50), atol=1e-6)
    logits = gate.mlp(s)  # eval: no noise, the kept experts are the 4 largest logits
    expected = logits.topk(4, dim=1).indices.sort(dim=1).values
    assert torch.equal(idx.sort(dim=1).values, expected)
    assert torch.equal((gates > 0), torch.zeros(50, 8, dtype=torch.bool).scatter(1, expected, True))


def test_gate_noise_only_in_training():
    torch.manual_seed(0)
    gate = NoisyTopKGate(experts=8, top_k=4, noise=5.0)
    s = torch.randn(200, 4)
    gate.eval()
    a, b = gate(s)[0], gate(s)[0]
    assert torch.equal(a, b)
    gate.train()
    c = gate(s)[0]
    assert not torch.equal(a, c)


def test_load_balance_uniform_vs_collapsed():
    n, c, k = 64, 8, 4
    uniform_probs = torch.full((n, c), 1.0 / c)
    rotating = (torch.arange(n).unsqueeze(1) + torch.arange(k).unsqueeze(0)) % c  # every expert equally used
    lb_uniform = load_balance_loss(uniform_probs, rotating, c)
    collapsed_probs = torch.zeros(n, c)
    collapsed_probs[:, :k] = 1.0 / k
    collapsed_idx = torch.arange(k).expand(n, k)
    lb_collapsed = load_balance_loss(collapsed_probs, collapsed_idx, c)
    assert lb_uniform.item() == pytest.approx(1.0)
    assert lb_collapsed.item() == pytest.approx(c / k)
    assert lb_collapsed > lb_uniform


def test_usage_statistics_and_dense_equals_sparse():
    torch.manual_seed(0)
    sparse = SCMoE(d_model=16, ffn_dim=24, experts=8, top_k=4, dispatch="sparse").eval()
    dense = SCMoE(d_model=16, ffn_dim=24, experts=8, top_k=4, dispatch="dense").eval()
    dense.load_state_dict(sparse.state_dict())
    h = torch.randn(40, 16, requires_grad=True)
    s = torch.randn(40, 4)
    ys = sparse(h, s)
    assert int(sparse.last_usage.sum()) == 4 * 40
    assert torch.equal(sparse.last_usage, torch.bincount(sparse.gate(s)[1].reshape(-1), minlength=8))
    sparse(h, s)
    assert torch.equal(sparse.usage_totals, 2 * sparse.last_usage)
    sparse.reset_usage()
    assert int(sparse.usage_totals.sum()) == 0
    yd = dense(h, s)
    assert torch.allclose(ys, yd, atol=1e-5)
    gs = torch.autograd.grad(ys.pow(2).sum(), [h, sparse.w1])
    gd = torch.autograd.grad(yd.pow(2).sum(), [h, dense.w1])
    for a, b in zip(gs, gd):
        assert torch.allclose(a, b, atol=1e-4)


def test_model_expert_usage_counts_real_points(small_config):
    torch.manual_seed(0)
    model = TransferTraj(small_config)
    batch = build_batch([9, 5, 2], seed=1)
    model.predict(batch)
    usage = model.expert_usage()
    assert usage.shape == (small_config.layers, 8)
    assert torch.equal(usage.sum(dim=1), torch.full((small_config.layers,), 4 * 16))
    assert model.auxiliary_loss().item() == pytest.approx(small_config.load_balance_weight * model.load_balance().item())
    assert model.load_balance().item() >= 1.0 - 1e-6


def test_gate_reads_context_not_token():
    torch.manual_seed(0)
    moe = SCMoE(d_model=16, ffn_dim=16).eval()
    h = torch.randn(30, 16)
    s = torch.randn(30, 4)
    moe(h, s)
    u1 = moe.last_usage.clone()
    moe(torch.randn(30, 16), s)
    assert torch.equal(u1, moe.last_usage)
    moe(h, s * 10)
    assert not torch.equal(u1, moe.last_usage)
