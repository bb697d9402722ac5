"""Meta-knowledge enhanced road encoder (MetaTRL eqs. 6-10)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch_geometric.nn import MessagePassing

from trajzoo.data.batch import RoadGraph
from trajzoo.nn.graph import successor_edges_with_self_loops
from trajzoo_metatrl.parameters import classify_or_raise, shared_parameters
from trajzoo_metatrl.road_encoder import MetaKnowledgeGATLayer, MetaKnowledgeRoadEncoder

D = 16


def _encoder(use_meta_knowledge: bool = True, n_layers: int = 2) -> MetaKnowledgeRoadEncoder:
    torch.manual_seed(0)
    return MetaKnowledgeRoadEncoder(5, D, n_layers, use_meta_knowledge=use_meta_knowledge)


@pytest.mark.parametrize("use_meta_knowledge", [True, False])
def test_shape_and_classification(graph: RoadGraph, use_meta_knowledge: bool) -> None:
    enc = _encoder(use_meta_knowledge)
    h = enc(graph)
    assert h.shape == (graph.num_segments, D)
    assert torch.isfinite(h).all()
    classify_or_raise(enc)
    shared = shared_parameters(enc)
    if use_meta_knowledge:
        assert shared and all(n.startswith("shared_mkf.") for n in shared)
        assert all(isinstance(layer, MessagePassing) for layer in enc.private_layers)
    else:
        assert not shared


def test_output_depends_on_transition_probability(graph: RoadGraph) -> None:
    enc = _encoder(True)
    changed = replace(graph, transition_prob=graph.transition_prob.flip(0))
    assert not torch.allclose(enc(graph), enc(changed), atol=1e-6)
    # the ablation ignores p_ij
    plain = _encoder(False)
    assert torch.equal(plain(graph), plain(changed))


def test_output_depends_on_structural_vector(graph: RoadGraph) -> None:
    enc = _encoder(True)
    changed = replace(graph, structural=graph.structural + torch.randn(graph.structural.shape))
    assert not torch.allclose(enc(graph), enc(changed), atol=1e-6)
    plain = _encoder(False)
    assert torch.equal(plain(graph), plain(changed))


@pytest.mark.parametrize("use_meta_knowledge", [True, False])
def test_messages_flow_from_successors(graph: RoadGraph, use_meta_knowledge: bool) -> None:
    """With one layer, changing segment j's attributes only changes j and its predecessors i (i -> j)."""
    enc = _encoder(use_meta_knowledge, n_layers=1)
    for j in (9, 3):
        attributes = graph.attributes.clone()
        attributes[j] += 3.0
        diff = (enc(graph) - enc(replace(graph, attributes=attributes))).abs().sum(dim=1)
        changed = set(torch.nonzero(diff > 1e-7).flatten().tolist())
        predecessors = {i for i, k in graph.edge_index.t().tolist() if k == j}
        assert changed == predecessors | {j}


def test_attention_normalised_over_neighbourhood(graph: RoadGraph) -> None:
    """If every h_j is the same vector c, sum_j alpha_ij = 1 gives h_i' = ELU(c W_1) for every i."""
    torch.manual_seed(0)
    layer = MetaKnowledgeGATLayer(D)
    edge_index, p = successor_edges_with_self_loops(graph)
    c = torch.randn(D)
    h = c.expand(graph.num_segments, D).clone()
    mkf = torch.randn(graph.num_segments, D)
    out = layer(h, mkf, edge_index, p)
    expected = torch.nn.functional.elu(layer.private_w1(c)).expand_as(out)
    assert torch.allclose(out, expected, atol=1e-5)


def test_reset_parameters_deterministic(graph: RoadGraph) -> None:
    a, b = _encoder(True), _encoder(True)
    assert torch.equal(a(graph), b(graph))
    before = a(graph)
    torch.manual_seed(5)
    a.reset_parameters()
    assert not torch.equal(a(graph), before)


def test_bad_graph_raises(graph: RoadGraph) -> None:
    enc = _encoder(True)
    with pytest.raises(ValueError, match="structural"):
        enc(replace(graph, structural=graph.structural[:, :5]))
    with pytest.raises(ValueError, match="attributes"):
        enc(replace(graph, attributes=torch.zeros(graph.num_segments, 3)))
    with pytest.raises(ValueError, match="transition_prob"):
        enc(replace(graph, transition_prob=graph.transition_prob[:-1]))
