"""Unit tests of the SMARTraj2 components, one per paper equation, with exact expected values.

Each was checked to fail with its equation broken (see the comment above each test)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trajzoo.nn.span_mask import fixed_span_mask
from trajzoo_smartraj2.disentanglement import FeatureDisentanglement, difference_loss
from trajzoo_smartraj2.gating import PersonalisedGate
from trajzoo_smartraj2.gps_encoder import HierarchicalGPSEncoder, group_fixes
from trajzoo_smartraj2.objectives import masked_token_loss, pair_loss, total_loss


# --- eq. 1: hierarchical GPS encoder ----------------------------------------------------------
PAD = torch.tensor([[False, False, False, False, True], [False, False, True, True, True]])
ASSIGN = torch.tensor([[0, 0, 2, -1, 0], [1, 1, -1, -1, -1]])


def test_group_fixes_exact():
    # broken by ignoring the padding mask (fix (0, 4) would join group 0) or the -1 assignments
    fix_b, fix_p, group, slot = group_fixes(PAD, ASSIGN)
    assert fix_b.tolist() == [0, 0, 0, 1, 1]
    assert fix_p.tolist() == [0, 1, 2, 0, 1]
    assert group.tolist() == [0, 0, 1, 2, 2]
    assert slot.tolist() == [0, 1, 0]  # row 0 has groups {0, 2} -> slots 0, 1; row 1 one group


def _encoder():
    torch.manual_seed(0)
    return HierarchicalGPSEncoder(8, layers=1, heads=2, ffn_dim=16).eval()


def test_gps_encoder_equals_per_subtrajectory_reference():
    # broken by running the GRU over the whole row instead of per sub-trajectory, or by dropping
    # the level-2 encoder: the reference below then differs
    enc = _encoder()
    gps = torch.randn(2, 5, 3)
    h, states = enc(gps, PAD, ASSIGN)
    from trajzoo.nn.positional import sinusoidal_position_encoding
    refs = []
    for row, groups in ((0, [[0, 1], [2]]), (1, [[0, 1]])):
        subs = []
        for fixes in groups:
            x = enc.input(gps[row, fixes])[None]
            _, h_n = enc.point_gru(x)
            subs.append(enc.sub_projection(torch.cat([h_n[0], h_n[1]], -1))[0])
        u = torch.stack(subs)[None] + sinusoidal_position_encoding(len(subs), 8)
        refs.append(enc.upper(u).mean(dim=1)[0])
    torch.testing.assert_close(h, torch.stack(refs), atol=1e-5, rtol=1e-5)
    assert states[0, 3].abs().sum() == 0 and states[0, 4].abs().sum() == 0  # unassigned / padding


def test_gps_encoder_ignores_padding_and_unassigned_fixes():
    # broken by reading padded fixes (e.g. valid = assign >= 0 only)
    enc = _encoder()
    gps = torch.randn(2, 5, 3)
    h, _ = enc(gps, PAD, ASSIGN)
    noisy = gps.clone()
    noisy[0, 3:] = 1e3
    noisy[1, 2:] = -1e3
    h2, _ = enc(noisy, PAD, ASSIGN)
    torch.testing.assert_close(h, h2)


def test_gps_encoder_row_without_fix_gets_absent_vector():
    enc = _encoder()
    h, _ = enc(torch.randn(2, 2, 3), torch.tensor([[False, False], [True, True]]), torch.tensor([[0, 1], [-1, -1]]))
    torch.testing.assert_close(h[1], enc.absent)


# --- eq. 6: difference loss -------------------------------------------------------------------
def test_difference_loss_hand_computed():
    # H^i^T H^s = [[3, 1], [4, 2]] -> 9 + 1 + 16 + 4 = 30; broken by H^i H^s^T (= [[2, 1], [4, 3]]
    # -> also 30!) -- so a non-square case too: broken by a missing square (-> 10) or a sqrt
    h_i = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    h_s = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert float(difference_loss(h_i, h_s)) == 30.0
    a = torch.tensor([[1.0, 0.0, 2.0]])  # (1, 3): a^T b is (3, 3) = outer product
    b = torch.tensor([[1.0, 1.0, 0.0]])
    assert float(difference_loss(a, b)) == (1 + 1 + 0 + 0 + 0 + 0 + 4 + 4 + 0)


def test_extractors_shapes_and_city_specific():
    torch.manual_seed(0)
    m = FeatureDisentanglement(["porto", "sf"], 12, 4)
    x = torch.randn(3, 12)
    h_i, h_p = m(x, "porto")
    _, h_sf = m(x, "sf")
    assert h_i.shape == (3, 4) and not torch.allclose(h_p, h_sf)
    with pytest.raises(KeyError, match="chengdu"):
        m(x, "chengdu")


# --- eqs. 7-12: personalised gating -----------------------------------------------------------
def test_gates_in_zero_gamma_and_reach_above_one():
    # broken by dropping gamma (max 1) or the sigmoid (unbounded)
    torch.manual_seed(0)
    gate = PersonalisedGate(4, 6, 5, hidden=8, embed_dim=3, gamma=2.0)
    h = torch.randn(7, 4) * 100  # extreme inputs: still within [0, gamma]
    _, dc, dt = gate(h, torch.randn(6) * 100, torch.randn(7, 5) * 100)
    assert float(dc.min()) >= 0 and float(dc.max()) <= 2.0 and float(dt.min()) >= 0 and float(dt.max()) <= 2.0
    with torch.no_grad():
        gate.city_gate.weight.zero_()
        gate.city_gate.bias.fill_(3.0)
        gate.traj_gate.weight.zero_()
        gate.traj_gate.bias.fill_(-1.0)
    out, dc, dt = gate(h, torch.randn(6), torch.randn(7, 5))
    torch.testing.assert_close(dc, torch.full((7, 4), 2.0 / (1 + math.exp(-3.0))))  # eq. 8: 1.905 > 1
    torch.testing.assert_close(dt, torch.full((7, 4), 2.0 / (1 + math.exp(1.0))))  # eq. 11
    torch.testing.assert_close(out, dt * dc * h)  # eqs. 9 and 12


def test_gate_stop_gradient_no_gradient_reaches_h_r_through_the_gate():
    # broken by removing either .detach(): the gradient then also flows through the gate inputs
    torch.manual_seed(0)
    gate = PersonalisedGate(4, 6, 5, hidden=8, embed_dim=3)
    h = torch.randn(3, 4, requires_grad=True)
    out, dc, dt = gate(h, torch.randn(6), torch.randn(3, 5))
    assert torch.autograd.grad(dc.sum(), h, retain_graph=True, allow_unused=True)[0] is None
    assert torch.autograd.grad(dt.sum(), h, retain_graph=True, allow_unused=True)[0] is None
    (g,) = torch.autograd.grad(out.sum(), h)
    torch.testing.assert_close(g, (dc * dt).detach())  # only through the products of eqs. 9, 12
    # the gates themselves still learn
    gate.zero_grad()
    out, _, _ = gate(h.detach(), torch.randn(6), torch.randn(3, 5))
    out.sum().backward()
    assert gate.city_hidden.weight.grad.abs().sum() > 0 and gate.traj_hidden.weight.grad.abs().sum() > 0


# --- appendix B.1.4: masking --------------------------------------------------------------------
def _runs(row):
    runs, n = [], 0
    for v in row.tolist() + [False]:
        if v:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def test_fixed_span_mask_length_two_twenty_percent():
    # broken by geometric span lengths or a ratio other than 20 %
    pad = torch.zeros(3, 30, dtype=torch.bool)
    pad[1, 21:] = True
    pad[2, 10:] = True
    m = fixed_span_mask(pad, 0.2, 2, torch.Generator().manual_seed(0))
    assert m.sum(dim=1).tolist() == [6, 4, 2]  # round(0.2 * n) for n = 30, 21, 10
    for row in m:
        assert _runs(row) and all(r == 2 for r in _runs(row))
    assert not (m & pad).any() and not m[:, 0].any()
    again = fixed_span_mask(pad, 0.2, 2, torch.Generator().manual_seed(0))
    assert torch.equal(m, again)


def test_fixed_span_mask_odd_count_truncates_last_span():
    pad = torch.zeros(1, 15, dtype=torch.bool)
    m = fixed_span_mask(pad, 0.2, 2, torch.Generator().manual_seed(1))  # k = 3: spans 2 + 1
    assert int(m.sum()) == 3 and sorted(_runs(m[0])) == [1, 2]


# --- eq. 13-15 ----------------------------------------------------------------------------------
def test_pair_loss_against_reference_formula():
    # reference: -mean_b log(exp(cos(a_b, c_b)/tau) / sum_k exp(cos(a_b, c_k)/tau)), both directions,
    # averaged over the view pairs; broken by dropping the normalisation or one direction
    torch.manual_seed(0)
    views = [torch.randn(4, 3) for _ in range(3)]
    tau = 0.5

    def ref(a, c):
        total = 0.0
        for i in range(4):
            sims = [F.cosine_similarity(a[i], c[k], dim=0) / tau for k in range(4)]
            total += -math.log(math.exp(sims[i]) / sum(math.exp(s) for s in sims))
        return total / 4

    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = sum((ref(views[i], views[j]) + ref(views[j], views[i])) / 2 for i, j in pairs) / 3
    assert float(pair_loss(views, tau)) == pytest.approx(expected, rel=1e-5)
    assert float(pair_loss(views[:1], tau)) == 0.0


def test_masked_token_loss_only_masked_positions():
    states = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    table = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    targets = torch.tensor([[0, 2]])
    mask = torch.tensor([[False, True]])
    expected = -math.log(math.exp(1.0) / (math.exp(0.0) + math.exp(2.0) + math.exp(1.0)))
    assert float(masked_token_loss(states, targets, mask, table)) == pytest.approx(expected, rel=1e-6)


def test_total_loss_weights():
    assert float(total_loss(torch.tensor(2.0), torch.tensor(3.0), torch.tensor(5.0), 0.5, 2.0, 3.0)) == 22.0
