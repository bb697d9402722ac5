"""SC-MoE: exact top-k gating on the token, load balancing, expert usage, dense == sparse dispatch."""
from dataclasses import replace

import pytest
import torch

from trajzoo_transfertraj.model import TransferTraj
from trajzoo_transfertraj.sc_moe import NoisyTopKGate, SCMoE, load_balance_loss

from transfertraj_toy import build_batch


def test_gate_picks_exactly_top_k_of_eight():
    torch.manual_seed(0)
    gate = NoisyTopKGate(d_model=16, experts=8, top_k=4).eval()
    s = torch.randn(50, 16)
    gates, idx, probs = gate(s)
    assert gates.shape == (50, 8) and idx.shape == (50, 4)
    assert torch.equal((gates > 0).sum(dim=1), torch.full((50,), 4))
    assert torch.allclose(gates.sum(dim=1), torch.ones(50), atol=1e-6)
    assert torch.allclose(probs.sum(dim=1), torch.ones(50), atol=1e-6)
    logits = s @ gate.router.weight.t()  # eval: no noise, the kept experts are the 4 largest logits
    expected = logits.topk(4, dim=1).indices.sort(dim=1).values
    assert torch.equal(idx.sort(dim=1).values, expected)
    assert torch.equal((gates > 0), torch.zeros(50, 8, dtype=torch.bool).scatter(1, expected, True))


def test_gate_noise_only_in_training():
    torch.manual_seed(0)
    gate = NoisyTopKGate(d_model=16, experts=8, top_k=4, noise=5.0)
    s = torch.randn(200, 16)
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
    ys = sparse(h)
    assert int(sparse.last_usage.sum()) == 4 * 40
    assert torch.equal(sparse.last_usage, torch.bincount(sparse.gate(h)[1].reshape(-1), minlength=8))
    sparse(h)
    assert torch.equal(sparse.usage_totals, 2 * sparse.last_usage)
    sparse.reset_usage()
    assert int(sparse.usage_totals.sum()) == 0
    yd = dense(h)
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


def test_gate_routes_on_the_token():
    """The paper's router: G(h) = Softmax(KeepTopK(H(h), k)) on the token h itself."""
    torch.manual_seed(0)
    moe = SCMoE(d_model=16, ffn_dim=16).eval()
    h = torch.randn(30, 16)
    moe(h)
    u1 = moe.last_usage.clone()
    assert torch.equal(moe.gate(h)[1], moe.gate.logits(h).topk(4, dim=-1).indices)
    moe(torch.randn(30, 16))
    assert not torch.equal(u1, moe.last_usage)


def test_model_gate_reads_the_block_token_with_context_inside(small_config):
    """In the model, every SC-MoE gate reads exactly LN(H') of its block (no other input), and the
    spatial context reaches the routing through the token."""
    torch.manual_seed(0)
    model = TransferTraj(small_config).eval()
    seen = {}
    for i, block in enumerate(model.encoder.blocks):
        block.norm_ffn.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(("ln", i), out))
        block.ffn.gate.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(("gate", i), (a, out[0])))
    batch = build_batch([12, 7], seed=1)
    model.predict(batch)
    for i in range(small_config.layers):
        args, _ = seen[("gate", i)]
        assert len(args) == 1 and torch.equal(args[0], seen[("ln", i)])
    before = seen[("gate", 0)][1]
    model.predict(replace(batch, poi_category=(batch.poi_category + 1) % 14, context=batch.context * 3))
    assert not torch.allclose(seen[("gate", 0)][1], before)  # context -> token -> routing
