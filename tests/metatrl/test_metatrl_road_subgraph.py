"""MetaTRL's road encoder on the batch's L-hop subgraph equals the whole-graph encoder at the
batch's roads (outputs and gradients, training and evaluation), and the evaluation cache follows
parameter updates."""
from __future__ import annotations

import pytest
import torch

from trajzoo.nn.graph import batch_segments, receptive_subgraph
from trajzoo_metatrl.model import MetaTRLConfig, MetaTRLEncoder
from trajzoo_metatrl.objective import MetaTRLPretrainer
from trajzoo_metatrl.road_encoder import MetaKnowledgeRoadEncoder

from road_batch_toy import assert_one_hop_short_subgraph_differs, assert_subgraph_equals_whole_graph, random_road_batch, ring_road_graph

N = 120
TOL = dict(rtol=1e-5, atol=1e-6)


def whole_graph_forward(encoder: MetaTRLEncoder, batch, graph, road_mask=None):
    """The encoder's forward with the whole-graph road encoder (the pre-subgraph computation)."""
    h = encoder.road_encoder._encode(graph, None)
    x = encoder.trajectory_encoder.embed_inputs(h, batch.roads, encoder.temporal_encoder(batch), road_mask)
    return encoder.trajectory_encoder(x, batch.padding_mask)


@pytest.mark.parametrize("meta", [True, False])
@pytest.mark.parametrize("layers", [1, 3])
def test_subgraph_outputs_and_gradients_equal_whole_graph(meta, layers):
    torch.manual_seed(0)
    graph = ring_road_graph(N)
    enc = MetaKnowledgeRoadEncoder(5, 16, layers, use_meta_knowledge=meta).train()
    segments = torch.tensor([3, 40, 41, 90])
    subset = receptive_subgraph(segments, graph.edge_index, layers, N, "target_to_source")[0]
    assert subset.numel() < N  # a strict subgraph: the test compares something
    assert_subgraph_equals_whole_graph(enc, graph, segments, 16)


def test_one_hop_too_few_changes_the_outputs(monkeypatch):
    """Guards the test above: a subgraph one hop short gives other outputs."""
    import trajzoo_metatrl.road_encoder as module

    torch.manual_seed(0)
    graph = ring_road_graph(N)
    enc = MetaKnowledgeRoadEncoder(5, 16, 3).train()
    segments = torch.tensor([3, 40, 41, 90])
    assert_one_hop_short_subgraph_differs(enc, module, graph, segments, monkeypatch)


def test_encoder_training_and_evaluation_equal_whole_graph():
    torch.manual_seed(0)
    graph = ring_road_graph(N)
    cfg = MetaTRLConfig(d_model=16, gat_layers=2, layers=1, heads=2, ffn_dim=32)
    model = MetaTRLPretrainer(N, 5, cfg).train()
    batch = random_road_batch([6, 4, 5], N, seed=3)
    assert batch_segments(batch.roads).numel() < N
    mask = torch.zeros_like(batch.padding_mask)
    mask[0, 2] = mask[2, 1] = True

    z_sub = model.encoder(batch, graph, mask)
    z_full = whole_graph_forward(model.encoder, batch, graph, mask)
    torch.testing.assert_close(z_sub, z_full, **TOL)
    # the pretraining loss and its gradients through the subgraph equal the whole-graph ones
    loss_sub, _ = model.loss(batch, graph, torch.Generator().manual_seed(5))
    loss_sub.backward()
    grads_sub = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    encode = model.encoder.road_encoder.forward
    model.encoder.road_encoder.forward = lambda g, s=None: encode(g) if s is None else encode(g)[s]  # whole graph
    loss_full, _ = model.loss(batch, graph, torch.Generator().manual_seed(5))
    loss_full.backward()
    del model.encoder.road_encoder.forward
    torch.testing.assert_close(loss_sub, loss_full, **TOL)
    for g_sub, p in zip(grads_sub, model.parameters()):
        torch.testing.assert_close(g_sub, p.grad, **TOL)

    model.eval()
    with torch.no_grad():
        z_eval = model.encoder(batch, graph)
        z_ref = whole_graph_forward(model.encoder, batch, graph)
    torch.testing.assert_close(z_eval, z_ref, **TOL)


def test_evaluation_cache_reused_and_refreshed_after_a_step():
    torch.manual_seed(0)
    graph = ring_road_graph(N)
    cfg = MetaTRLConfig(d_model=16, gat_layers=2, layers=1, heads=2, ffn_dim=32)
    model = MetaTRLPretrainer(N, 5, cfg)
    road = model.encoder.road_encoder
    calls = []
    real = road._encode
    road._encode = lambda g, s: calls.append(s) or real(g, s)
    batch = random_road_batch([6, 4], N, seed=1)
    model.eval()
    with torch.no_grad():
        first = model.encoder.embed(batch, graph)
        again = model.encoder.embed(random_road_batch([3], N, seed=2), graph)
    assert len(calls) == 1 and calls[0] is None  # one whole-graph pass for both batches
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.loss(batch, graph, torch.Generator().manual_seed(0))[0].backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        after = model.encoder.embed(batch, graph)
        assert len(calls) == 3 and calls[-1] is None  # the step invalidated the cache
        expected = whole_graph_forward(model.encoder, batch, graph)
    assert not torch.allclose(after, first)
    from trajzoo.nn.pooling import mean_pool
    torch.testing.assert_close(after, mean_pool(expected, batch.padding_mask), **TOL)
    assert again.shape == (1, 16)
