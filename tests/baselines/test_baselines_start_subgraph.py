"""START's TPE-GAT on the batch's L-hop subgraph equals the whole-graph TPE-GAT at the batch's
roads (outputs and gradients, training and evaluation), and its evaluation cache follows
parameter updates."""
from __future__ import annotations

import pytest
import torch

from trajzoo_baselines.start.config import STARTConfig
from trajzoo_baselines.start.objective import STARTPretrainer
from trajzoo_baselines.start.road_encoder import TPEGATRoadEncoder, transfer_probability_edges
from trajzoo.nn.graph import receptive_subgraph

from baselines_toy import single_thread  # noqa: F401  (autouse fixture)
from road_batch_toy import assert_one_hop_short_subgraph_differs, assert_subgraph_equals_whole_graph, random_road_batch, ring_road_graph

N = 120
TOL = dict(rtol=1e-5, atol=1e-6)
CFG = dict(d_model=16, gat_layers=2, gat_heads=2, layers=1, heads=2, ffn_dim=32, dropout=0.0)


@pytest.mark.parametrize("layers", [1, 3])
def test_subgraph_outputs_and_gradients_equal_whole_graph(layers):
    torch.manual_seed(0)
    graph = ring_road_graph(N)
    enc = TPEGATRoadEncoder(5, 16, layers, heads=2, num_segments=N).train()
    enc.out_counts = torch.rand(N, dtype=torch.float64) * 10 + 1  # fitted, unequal counts
    segments = torch.tensor([0, 3, 40, 41, 90])
    edges, _ = transfer_probability_edges(graph, enc.out_counts)
    assert receptive_subgraph(segments, edges, layers, N, "source_to_target")[0].numel() < N
    assert_subgraph_equals_whole_graph(enc, graph, segments, 16)


def test_one_hop_too_few_changes_the_outputs(monkeypatch):
    """Guards the test above: a subgraph one hop short gives other outputs."""
    import trajzoo_baselines.start.road_encoder as module

    torch.manual_seed(0)
    graph = ring_road_graph(N)
    enc = TPEGATRoadEncoder(5, 16, 3, heads=2, num_segments=N).train()
    segments = torch.tensor([3, 40, 41, 90])
    assert_one_hop_short_subgraph_differs(enc, module, graph, segments, monkeypatch)


def test_pretraining_loss_and_embeddings_equal_whole_graph():
    torch.manual_seed(0)
    graph = ring_road_graph(N)
    model = STARTPretrainer(N, 5, STARTConfig(**CFG)).train()
    batch = random_road_batch([7, 5, 6, 4], N, seed=3, time_known_at_padding=False)
    model.fit_to_trips([{"roads": r[~m].numpy(), "seconds": s[~m].numpy()}
                        for r, m, s in zip(batch.roads, batch.padding_mask, batch.seconds)])

    loss_sub, stats_sub = model.loss(batch, graph, torch.Generator().manual_seed(5))
    loss_sub.backward()
    grads_sub = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    road_embeddings = model.encoder.road_embeddings
    model.encoder.road_embeddings = lambda g, s=None: road_embeddings(g)  # whole graph, every row
    loss_full, stats_full = model.loss(batch, graph, torch.Generator().manual_seed(5))
    loss_full.backward()
    torch.testing.assert_close(loss_sub, loss_full, **TOL)
    for g_sub, p in zip(grads_sub, model.parameters()):
        torch.testing.assert_close(g_sub, p.grad, **TOL)
    z_full_train = model.encoder.embed(batch, graph)
    del model.encoder.road_embeddings
    torch.testing.assert_close(model.encoder.embed(batch, graph), z_full_train, **TOL)

    model.eval()
    with torch.no_grad():
        z_eval = model.encoder.embed(batch, graph)
        z_ref = model.encoder.encode_trajectory(model.encoder.road_encoder._encode(graph, None), batch)
    torch.testing.assert_close(z_eval, z_ref, **TOL)


def test_evaluation_cache_reused_and_refreshed_after_a_step():
    torch.manual_seed(0)
    graph = ring_road_graph(N)
    model = STARTPretrainer(N, 5, STARTConfig(**CFG))
    road = model.encoder.road_encoder
    calls = []
    real = road._encode
    road._encode = lambda g, s: calls.append(s) or real(g, s)
    batch = random_road_batch([6, 4], N, seed=1, time_known_at_padding=False)
    model.eval()
    with torch.no_grad():
        first = model.encoder.embed(batch, graph)
        model.encoder.embed(random_road_batch([3], N, seed=2, time_known_at_padding=False), graph)
    assert len(calls) == 1 and calls[0] is None
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.loss(batch, graph, torch.Generator().manual_seed(0))[0].backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        after = model.encoder.embed(batch, graph)
        assert len(calls) == 3 and calls[-1] is None
        expected = model.encoder.encode_trajectory(real(graph, None), batch)
    assert not torch.allclose(after, first)
    torch.testing.assert_close(after, expected, **TOL)
