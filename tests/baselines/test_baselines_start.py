"""START (ICDE 2023): TPE-GAT uses p_ij, TAT-Enc's interval bias, augmentations, NT-Xent,
span masks, shapes and padding invariance."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from baselines_toy import ATTRIBUTE_DIM, NUM_SEGMENTS, append_padding, build_batch, build_graph
from baselines_toy import single_thread  # noqa: F401  (autouse fixture)
from trajzoo.data.batch import hide_times
from trajzoo_baselines.start.augmentation import shift_times, trim_trajectories
from trajzoo_baselines.start.config import STARTConfig, STARTSchedule
from trajzoo_baselines.start.model import STARTEncoder
from trajzoo.nn.contrastive import nt_xent
from trajzoo_baselines.start.objective import STARTPretrainer
from trajzoo_baselines.start.road_encoder import TPEGATRoadEncoder
from trajzoo_baselines.start.trajectory_encoder import TimeIntervalBias, TimeAwareSelfAttention

CONFIG = STARTConfig(d_model=16, gat_layers=2, gat_heads=2, layers=2, heads=2, ffn_dim=32, dropout=0.0,
                     interval_hidden=8, mask_ratio=0.2)


def _encoder() -> STARTEncoder:
    torch.manual_seed(0)
    return STARTEncoder(NUM_SEGMENTS, ATTRIBUTE_DIM, CONFIG).eval()


def test_shapes_and_zero_padding():
    batch, graph = build_batch([12, 9, 5, 2, 1]), build_graph()
    enc = _encoder()
    with torch.no_grad():
        z = enc(batch, graph)
        e = enc.embed(batch, graph)
    assert z.shape == (5, 12, 16) and e.shape == (5, 16)
    assert torch.all(z[batch.padding_mask] == 0) and torch.isfinite(z).all()
    assert enc.road_embeddings(graph).shape == (NUM_SEGMENTS, 16)


def test_padding_invariance():
    batch, graph = build_batch([12, 9, 5, 2, 1]), build_graph()
    enc = _encoder()
    with torch.no_grad():
        z, z_pad = enc(batch, graph), enc(append_padding(batch, 6), graph)
    assert torch.allclose(z, z_pad[:, :12], atol=1e-5)
    assert torch.all(z_pad[:, 12:] == 0)


def test_tpe_gat_output_depends_on_transfer_probability():
    graph = build_graph()
    torch.manual_seed(0)
    gat = TPEGATRoadEncoder(ATTRIBUTE_DIM, 16, layers=2, heads=2).eval()
    other = replace(graph, transition_prob=graph.transition_prob.flip(0))
    with torch.no_grad():
        h, h_other = gat(graph), gat(other)
    assert h.shape == (NUM_SEGMENTS, 16)
    assert not torch.allclose(h, h_other, atol=1e-6)
    # p_ij only steers the attention of segment i over its successors: the sink 9 (only a self
    # loop) depends on nothing but its own features in the first layer
    changed = (h - h_other).abs().sum(dim=1) > 1e-6
    assert changed.sum() >= NUM_SEGMENTS - 2


def test_tpe_gat_aggregates_downstream_successors():
    """Segment 9 has no successor: changing only segment 0's features (9's only upstream is 4,
    0 is not downstream of 9) must leave 9's representation unchanged."""
    graph = build_graph()
    torch.manual_seed(0)
    gat = TPEGATRoadEncoder(ATTRIBUTE_DIM, 16, layers=2, heads=2).eval()
    attrs = graph.attributes.clone()
    attrs[4] += 5.0
    with torch.no_grad():
        h, h2 = gat(graph), gat(replace(graph, attributes=attrs))
    assert torch.allclose(h[9], h2[9])
    assert not torch.allclose(h[3], h2[3])  # 3 -> 4: segment 3 attends over its successor 4


def test_interval_bias_changes_attention_when_times_change():
    torch.manual_seed(0)
    bias_net = TimeIntervalBias(heads=2, hidden=8)
    attention = TimeAwareSelfAttention(16, 2)
    batch = build_batch([6, 4])
    x = torch.randn(2, 6, 16)
    known = ~batch.padding_mask
    with torch.no_grad():
        w1, _ = attention.attention_weights(x, bias_net(batch.seconds, known), batch.padding_mask)
        w2, _ = attention.attention_weights(x, bias_net(batch.seconds * 7.0, known), batch.padding_mask)
        w3, _ = attention.attention_weights(x, bias_net(batch.seconds + 600.0, known), batch.padding_mask)
    assert not torch.allclose(w1, w2, atol=1e-6)
    assert torch.allclose(w1, w3, atol=1e-6)  # only intervals matter, not the trip's origin of time
    assert torch.all(w1[1, :, :, 4:] == 0)  # padded keys get no weight
    assert torch.allclose(w1.sum(-1), torch.ones(2, 2, 6))


def test_unknown_times_are_not_read():
    batch, graph = build_batch([8, 6]), build_graph()
    hidden = torch.zeros_like(batch.padding_mask)
    hidden[:, 3:5] = True
    a = hide_times(batch, hidden)
    b = replace(a, minute_of_day=a.minute_of_day.masked_fill(hidden, 7),
                day_of_week=a.day_of_week.masked_fill(hidden, 3),
                seconds=a.seconds.masked_fill(hidden, 1e5))
    enc = _encoder()
    with torch.no_grad():
        assert torch.allclose(enc(a, graph), enc(b, graph), atol=1e-6)
        assert not torch.allclose(enc(a, graph), enc(batch, graph), atol=1e-6)


def test_trimming_keeps_a_contiguous_window_of_at_least_60_percent():
    batch = build_batch([12, 9, 5, 2, 1], max_len=14)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        view = trim_trajectories(batch, 0.6, gen)
        assert view.roads.shape[1] <= 12
        kept = view.lengths
        assert torch.all(kept >= torch.ceil(batch.lengths * 0.6)) and torch.all(kept <= batch.lengths)
        for r in range(5):
            n, m = int(batch.lengths[r]), int(kept[r])
            window = view.roads[r, :m].tolist()
            starts = [s for s in range(n - m + 1) if batch.roads[r, s:s + m].tolist() == window]
            assert starts, "not a contiguous window"
            s = starts[0]
            assert torch.allclose(view.seconds[r, :m], batch.seconds[r, s:s + m] - batch.seconds[r, s])
            assert torch.equal(view.minute_of_day[r, :m], batch.minute_of_day[r, s:s + m])
        assert not view.padding_mask[:, 0].any()
        assert torch.all(view.roads[view.padding_mask] == 0)
        assert not (view.time_known & view.padding_mask).any()


def test_temporal_shifting_moves_clock_not_intervals():
    batch = build_batch([12, 9, 5])
    batch.minute_of_day[0, :12] = torch.arange(1430, 1442) % 1440  # crosses midnight
    batch.day_of_week[0, :12] = torch.tensor([6] * 10 + [0, 0])
    view = shift_times(batch, 30, torch.Generator().manual_seed(3))
    real = ~batch.padding_mask
    assert torch.equal(view.seconds, batch.seconds)
    assert torch.equal(view.roads, batch.roads)
    absolute = lambda b: b.day_of_week * 1440 + b.minute_of_day  # noqa: E731
    delta = torch.remainder(absolute(view) - absolute(batch), 7 * 1440)
    delta = torch.where(delta > 7 * 720, delta - 7 * 1440, delta)
    for r in range(3):
        d = delta[r][real[r]]
        assert torch.all(d == d[0]) and abs(int(d[0])) <= 30
    assert view.minute_of_day.max() < 1440 and view.day_of_week.max() < 7
    assert torch.all(view.minute_of_day[batch.padding_mask] == 0)


def test_contrastive_training_pulls_positive_views_together():
    """A few steps of the contrastive term alone: on fixed held-out views the NT-Xent loss drops
    and the positive pairs get closer relative to the negatives (at initialisation every
    trajectory maps near the same point, so absolute distances can only grow)."""
    torch.manual_seed(0)
    model = STARTPretrainer(NUM_SEGMENTS, ATTRIBUTE_DIM, replace(CONFIG, mask_weight=0.0, temperature=0.2))
    batch, graph = build_batch([12, 10, 9, 8, 7, 6], seed=3), build_graph()

    def measure() -> tuple[float, float]:
        with torch.no_grad():
            v1, v2 = model.views(batch, torch.Generator().manual_seed(99))
            z1, z2 = model.encoder.embed(v1, graph), model.encoder.embed(v2, graph)
            d = torch.cdist(torch.nn.functional.normalize(z1, dim=-1), torch.nn.functional.normalize(z2, dim=-1))
            off = ~torch.eye(len(d), dtype=torch.bool)
            return float(nt_xent(z1, z2, 0.2)), float(d.diag().mean() / d[off].mean())

    loss_before, ratio_before = measure()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for step in range(12):
        loss, stats = model.loss(batch, graph, torch.Generator().manual_seed(step))
        assert torch.isfinite(loss) and stats["mask_ce"] > 0
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss_after, ratio_after = measure()
    assert loss_after < loss_before
    assert ratio_after < ratio_before


def test_span_masks_never_on_padding_and_loss_terms():
    torch.manual_seed(0)
    model = STARTPretrainer(NUM_SEGMENTS, ATTRIBUTE_DIM, CONFIG)
    batch, graph = build_batch([12, 9, 5, 2, 1], max_len=14), build_graph()
    seen = []
    real_encode = model.encoder.encode

    def spy(roads, b, road_mask=None):
        if road_mask is not None:
            seen.append((road_mask.clone(), b))
        return real_encode(roads, b, road_mask)

    model.encoder.encode = spy
    loss, stats = model.loss(batch, graph, torch.Generator().manual_seed(0))
    mask, masked_batch = seen[0]
    assert not (mask & batch.padding_mask).any() and not mask[:, 0].any() and mask.any()
    assert not (masked_batch.time_known & mask).any()  # masked positions' times are hidden
    expected = CONFIG.mask_weight * stats["mask_ce"] + (1 - CONFIG.mask_weight) * stats["contrastive"]
    assert abs(stats["loss"] - expected) < 1e-5 and torch.isfinite(loss)
    loss.backward()


def test_config_and_schedule_reject_unknown_keys():
    with pytest.raises(ValueError, match="lambda"):
        STARTConfig.from_dict({"lambda": 0.5})
    with pytest.raises(ValueError, match="lr_decay"):
        STARTSchedule.from_dict({"lr_decay": 0.5})
    with pytest.raises(ValueError, match="temperature"):
        STARTConfig.from_dict({"temperature": 0})
    assert STARTConfig.from_dict({"mask_weight": 0.3}).mask_weight == 0.3
