"""MetaTRL equations written out independently and compared with the forward passes: eq. 10
(with the paper's shapes, W_ij = MKF(e_ij) W_2 in R^{2d x d}), eqs. 12-13 (intervals, softmax
over virtual buckets) and eqs. 16-18 (Q/K from the shared view, V from the private view).
Eq. 20 (gamma) is checked in test_metatrl_objective.py::test_loss_matches_equation_20."""
from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F

from trajzoo.data.batch import RoadGraph, TrajectoryBatch
from trajzoo.nn.graph import successor_edges_with_self_loops
from trajzoo_metatrl.road_encoder import MetaKnowledgeGATLayer, MetaKnowledgeRoadEncoder
from trajzoo_metatrl.temporal_encoder import TransferableTemporalEncoder
from trajzoo_metatrl.trajectory_encoder import KnowledgeFusionLayer

D = 8


def _eq10_reference(layer: MetaKnowledgeGATLayer, h, mkf, edge_index, p):
    """Eqs. 8-10 edge by edge with explicit 2d x d matrices W_ij = MKF(e_ij) W_2."""
    w1 = layer.private_w1.weight.t()  # h W_1 with W_1 (d x d)
    w2, w3, w4 = layer.private_w2, layer.private_w3, layer.private_w4  # (1, d) each
    n = h.shape[0]
    scores = {}
    for e in range(edge_index.shape[1]):
        i, j = int(edge_index[0, e]), int(edge_index[1, e])
        mkf_e = torch.cat([mkf[i], mkf[j]]).unsqueeze(1)  # (2d, 1) column, eq. 9
        w_ij = mkf_e @ w2  # (2d, d)
        hh = torch.cat([h[i], h[j]]).unsqueeze(0)  # (1, 2d)
        score = ((hh @ w_ij + p[e] * w3) @ w4.t()).squeeze()  # scalar
        scores.setdefault(i, []).append((j, score))
    out = torch.zeros(n, D)
    raw = []
    for i, items in scores.items():
        e = torch.stack([s for _, s in items])
        raw.append(e)
        alpha = torch.softmax(F.leaky_relu(e, 0.2), dim=0)
        out[i] = sum(a * (h[j] @ w1) for a, (j, _) in zip(alpha, items))
    return F.elu(out), torch.cat(raw)


def test_eq10_layer_equals_the_equation_with_2d_by_d_edge_matrices(graph: RoadGraph) -> None:
    torch.manual_seed(0)
    layer = MetaKnowledgeGATLayer(D)
    shapes = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    assert shapes == {"private_w1.weight": (D, D), "private_w2": (1, D), "private_w3": (1, D), "private_w4": (1, D)}
    edge_index, p = successor_edges_with_self_loops(graph)
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(graph.num_segments, D, generator=gen)
    mkf = torch.randn(graph.num_segments, D, generator=gen)
    p = p + 0.5  # every p_ij (self-loops too) matters
    expected, raw = _eq10_reference(layer, h, mkf, edge_index, p)
    assert (raw < 0).any() and (raw > 0).any(), "LeakyReLU must see both signs"
    assert torch.allclose(layer(h, mkf, edge_index, p), expected, atol=1e-5)


def test_eq10_inside_the_encoder_uses_mkf_of_s(graph: RoadGraph) -> None:
    """The encoder feeds MKF(s) = MLP^shared(s) (eq. 6) and NAF(u) (eq. 7) to the layers."""
    torch.manual_seed(0)
    enc = MetaKnowledgeRoadEncoder(5, D, n_layers=1)
    edge_index, p = successor_edges_with_self_loops(graph)
    h0 = enc.private_naf(graph.attributes)
    expected, _ = _eq10_reference(enc.private_layers[0], h0, enc.shared_mkf(graph.structural), edge_index, p)
    assert torch.allclose(enc(graph), expected, atol=1e-5)


def _temporal(batch: TrajectoryBatch) -> tuple[TransferableTemporalEncoder, torch.Tensor]:
    torch.manual_seed(0)
    enc = TransferableTemporalEncoder(D, num_buckets=6)
    with torch.no_grad():  # make the interval path clearly visible
        enc.shared_bucket_embedding.normal_(0.0, 1.0)
        enc.shared_interval_mlp.fc2.weight.mul_(5.0)
    return enc, enc(batch)


def test_eq12_13_temporal_encoder_equals_the_equations(batch: TrajectoryBatch) -> None:
    enc, out = _temporal(batch)
    b, length = batch.roads.shape
    expected = torch.zeros(b, length, D)
    for r in range(b):
        for i in range(length):
            if batch.padding_mask[r, i]:
                continue
            delta = 0.0 if i == 0 else float(batch.seconds[r, i] - batch.seconds[r, i - 1])  # eq. 12
            logits = enc.shared_interval_mlp(torch.tensor([[math.log1p(delta)]]))
            t_interval = torch.softmax(logits, dim=-1) @ enc.shared_bucket_embedding  # eq. 13
            t_period = (enc.private_day_embedding.weight[batch.day_of_week[r, i]]
                        + enc.private_minute_embedding.weight[batch.minute_of_day[r, i]])  # eq. 11
            expected[r, i] = t_period + t_interval[0]  # eq. 14
    real = ~batch.padding_mask
    assert torch.allclose(out[real], expected[real], atol=1e-5)


def test_eq12_only_the_interval_reaches_a_position(batch: TrajectoryBatch) -> None:
    """Delaying every segment from position k on by 10 min changes Delta_k only: T at k changes,
    T after k (same intervals, same day and minute) does not."""
    enc, out = _temporal(batch)
    k = 3
    seconds = batch.seconds.clone()
    seconds[:, k:] += 600.0
    shifted = enc(replace(batch, seconds=seconds))
    real = ~batch.padding_mask
    after = real.clone()
    after[:, : k + 1] = False
    assert torch.allclose(shifted[after], out[after], atol=1e-6)
    assert not torch.allclose(shifted[real[:, k], k], out[real[:, k], k], atol=1e-3)


def _eq18_reference(layer: KnowledgeFusionLayer, h, pad):
    """Eqs. 16-18 and the residual / LayerNorm / feed-forward around them."""
    x_shared, x_private = layer.shared_view(h), layer.private_view(h)  # eq. 16
    q, k, v = layer.shared_w_q(x_shared), layer.shared_w_k(x_shared), layer.private_w_v(x_private)  # eq. 17
    b, length, d = h.shape
    heads = layer.n_heads
    split = lambda t: t.view(b, length, heads, d // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
    context = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, length, d)  # eq. 18
    h1 = layer.norm1(h + layer.out(context))
    return layer.norm2(h1 + layer.ffn(h1))


def test_eq18_layer_equals_the_equations() -> None:
    torch.manual_seed(0)
    layer = KnowledgeFusionLayer(D, n_heads=2, ffn_dim=16)
    with torch.no_grad():  # views far apart, so swapping them shows
        layer.private_view.fc2.weight.add_(1.0)
    h = torch.randn(2, 5, D)
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    out = layer(h, pad)
    expected = _eq18_reference(layer, h, pad)
    real = ~pad
    assert torch.allclose(out[real], expected[real], atol=1e-5)
