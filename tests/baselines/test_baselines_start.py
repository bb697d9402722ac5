"""START (ICDE 2023): TPE-GAT over predecessors with in-normalised p_ij, TAT-Enc's interval
bias, the [CLS] token and pooler, the paper's augmentations (trimming 5-15 % from one end,
shifting ~15 % of travel times by 15-30 % toward their mean), NT-Xent, span masks, shapes and
padding invariance."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from baselines_toy import ATTRIBUTE_DIM, NUM_SEGMENTS, append_padding, build_batch, build_graph
from baselines_toy import single_thread  # noqa: F401  (autouse fixture)
from trajzoo.data.batch import hide_times
from trajzoo_baselines.start.augmentation import (road_mean_travel_seconds, shift_times, travel_times,
                                                  trim_trajectories)
from trajzoo_baselines.start.config import STARTConfig, STARTSchedule
from trajzoo_baselines.start.model import STARTEncoder
from trajzoo.nn.contrastive import nt_xent
from trajzoo_baselines.start.objective import STARTPretrainer
from trajzoo_baselines.start.road_encoder import TPEGATRoadEncoder, out_counts_from_trips, transfer_probability_edges
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
    changed = (h - h_other).abs().sum(dim=1) > 1e-6
    assert changed[[3, 5, 7, 8]].all()  # the segments entered from two predecessors


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


def test_tpe_gat_attends_over_predecessors():
    """Paper direction: each segment aggregates the segments a trip enters it from. Segment 9 is
    a sink (4 -> 9): changing 9 changes no other segment; changing 4 changes 9 but not 3
    (3's predecessors within two hops are 2, 6, 1, 5)."""
    graph = build_graph()
    torch.manual_seed(0)
    gat = TPEGATRoadEncoder(ATTRIBUTE_DIM, 16, layers=2, heads=2).eval()
    with torch.no_grad():
        h = gat(graph)
        attrs = graph.attributes.clone()
        attrs[9] += 5.0
        h9 = gat(replace(graph, attributes=attrs))
        attrs = graph.attributes.clone()
        attrs[4] += 5.0
        h4 = gat(replace(graph, attributes=attrs))
    assert torch.allclose(h[:9], h9[:9]) and not torch.allclose(h[9], h9[9])
    assert not torch.allclose(h[9], h4[9]) and torch.allclose(h[3], h4[3])
    edge_index, _ = transfer_probability_edges(graph)
    assert torch.equal(edge_index[:, :graph.edge_index.shape[1]], graph.edge_index)  # source i -> target j


def test_transfer_probability_normalised_by_in_counts():
    """counts 0->1: 3, 0->2: 1, 1->2: 2 (p by out-count: 3/4, 1/4, 1); by in-count of the
    target: p_01 = 1, p_02 = 1/3, p_12 = 2/3."""
    from trajzoo.data.batch import RoadGraph

    trips = [[0, 1, 2], [0, 1, 2], [0, 1], [0, 2]]
    graph = RoadGraph(city="t", num_segments=3, structural=torch.zeros(3, 6), attributes=torch.zeros(3, 2),
                      edge_index=torch.tensor([[0, 0, 1], [1, 2, 2]]), transition_prob=torch.tensor([0.75, 0.25, 1.0]))
    counts = out_counts_from_trips(trips, 3)
    assert counts.tolist() == [4.0, 2.0, 0.0]
    edge_index, p = transfer_probability_edges(graph, counts)
    got = {(int(i), int(j)): float(v) for (i, j), v in zip(edge_index.t().tolist(), p[:, 0])}
    assert got == pytest.approx({(0, 1): 1.0, (0, 2): 1 / 3, (1, 2): 2 / 3, (0, 0): 0.0, (1, 1): 0.0, (2, 2): 0.0})
    into = torch.zeros(3).index_add_(0, edge_index[1], p[:, 0])
    assert into[1:].tolist() == pytest.approx([1.0, 1.0])  # each entered segment's p sums to 1
    # the encoder uses the fitted counts (persistent buffer) and the pretrainer fits them
    torch.manual_seed(0)
    model = STARTPretrainer(3, 2, CONFIG)
    assert torch.all(model.encoder.road_encoder.out_counts == 0)
    model.fit_to_trips([{"roads": torch.tensor(t), "seconds": torch.arange(len(t)) * 30.0} for t in trips])
    assert model.encoder.road_encoder.out_counts.tolist() == [4.0, 2.0, 0.0]
    assert "encoder.road_encoder.out_counts" in model.state_dict()
    assert model.road_mean_seconds.tolist() == [30.0, 30.0, 0.0]


def test_trimming_removes_5_to_15_percent_from_one_end():
    batch = build_batch([40, 20, 12, 2, 1], max_len=40)
    n = batch.lengths
    starts, ends = 0, 0
    for seed in range(30):
        view = trim_trajectories(batch, (0.05, 0.15), torch.Generator().manual_seed(seed))
        removed = n - view.lengths
        assert torch.equal(removed[3:], torch.tensor([1, 0]))  # 2 points: 1 removed; 1 point: none
        for r in range(3):
            k, m = int(removed[r]), int(view.lengths[r])
            assert max(1, round(0.05 * int(n[r]))) <= k <= max(1, round(0.15 * int(n[r]))), (r, k)
            window = view.roads[r, :m]
            at_start = torch.equal(window, batch.roads[r, k:k + m])
            at_end = torch.equal(window, batch.roads[r, :m])
            assert at_start or at_end
            s = k if at_start and not at_end else 0
            starts += int(at_start and not at_end)
            ends += int(at_end and not at_start)
            assert torch.allclose(view.seconds[r, :m], batch.seconds[r, s:s + m] - batch.seconds[r, s])
            assert torch.equal(view.minute_of_day[r, :m], batch.minute_of_day[r, s:s + m])
        assert not view.padding_mask[:, 0].any() and torch.all(view.roads[view.padding_mask] == 0)
        assert not (view.time_known & view.padding_mask).any()
    assert starts > 15 and ends > 15  # both ends, never a middle window


def test_temporal_shifting_moves_15_percent_of_travel_times_toward_their_mean():
    batch = build_batch([41, 21, 12])
    tt, defined = travel_times(batch)
    road_mean = torch.full((NUM_SEGMENTS,), 100.0, dtype=torch.float64)
    view = shift_times(batch, 0.15, (0.15, 0.3), torch.Generator().manual_seed(3), road_mean)
    tt2, defined2 = travel_times(view)
    assert torch.equal(defined, defined2) and torch.equal(view.roads, batch.roads)
    changed = (tt2 - tt).abs() > 1e-3
    assert changed.sum(dim=1).tolist() == [6, 3, 2]  # round(0.15 m) of m = 40, 20, 11 travel times
    r = (tt2 - tt)[changed] / (100.0 - tt[changed])  # fraction of the way toward the mean
    assert torch.all(r >= 0.15 - 1e-4) and torch.all(r <= 0.3 + 1e-4)
    assert torch.all(view.seconds[:, 0] == 0) and torch.all(view.seconds[batch.padding_mask] == 0)
    # the intervals the time-interval bias reads do change, and the clock follows the entry times
    assert not torch.allclose(view.seconds, batch.seconds)
    shift_min = torch.round((view.seconds - batch.seconds) / 60.0).long()
    absolute = lambda b: b.day_of_week * 1440 + b.minute_of_day  # noqa: E731
    real = ~batch.padding_mask
    assert torch.equal(torch.remainder(absolute(view) - absolute(batch) - shift_min, 7 * 1440)[real],
                       torch.zeros(int(real.sum()), dtype=torch.long))
    # without road means: toward the trajectory's mean travel time
    view = shift_times(batch, 0.15, (0.3, 0.3), torch.Generator().manual_seed(3))
    tt3, _ = travel_times(view)
    mean = (tt.sum(1, keepdim=True) / defined.sum(1, keepdim=True)).expand_as(tt)
    ch = (tt3 - tt).abs() > 1e-3
    assert torch.allclose(tt3[ch], tt[ch] + 0.3 * (mean[ch] - tt[ch]), atol=1e-3)


def test_road_mean_travel_seconds():
    means = road_mean_travel_seconds([[0, 1, 2], [1, 0]], [[0, 10, 40], [0, 20]], 4)
    assert means.tolist() == [10.0, 25.0, 0.0, 0.0]


def test_cls_token_and_pooler_give_the_representation():
    batch, graph = build_batch([12, 9, 5]), build_graph()
    enc = _encoder()
    with torch.no_grad():
        roads = enc.road_embeddings(graph)
        tokens, cls = enc.trajectory_encoder.forward_with_cls(roads, batch)
        e = enc.embed(batch, graph)
        assert torch.allclose(e, torch.tanh(enc.pooler[0](cls)), atol=1e-6)
        assert not torch.allclose(e, tokens.sum(1) / batch.lengths[:, None])  # not mean pooling
        assert torch.allclose(enc(batch, graph), tokens)
        # the [CLS] input is learned and changes the representation
        enc.trajectory_encoder.cls_vector.add_(torch.randn(16))
        assert not torch.allclose(enc.embed(batch, graph), e, atol=1e-5)
    model = STARTPretrainer(NUM_SEGMENTS, ATTRIBUTE_DIM, CONFIG)
    calls = []
    real = model.encoder.encode_trajectory
    model.encoder.encode_trajectory = lambda r, b: calls.append(b) or real(r, b)
    model.loss(batch, graph, torch.Generator().manual_seed(0))
    assert len(calls) == 2  # both contrastive views use the pooled [CLS] representation


def test_schedule_is_a_config_class():
    from trajzoo.config import ConfigClass
    from trajzoo_baselines.training import PretrainSchedule

    assert issubclass(PretrainSchedule, ConfigClass) and issubclass(STARTSchedule, ConfigClass)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        STARTSchedule.from_dict({"batch_size": 0})
    with pytest.raises(ValueError, match="unknown start pretrain key"):
        STARTSchedule.from_dict({"epoch": 2})
    assert STARTSchedule.from_dict({"epochs": 2}).to_dict()["epochs"] == 2
