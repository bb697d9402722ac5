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


def test_structural_vector_has_fixed_units_in_every_city() -> None:
    """Eq. 5's s feeds the SHARED MKF: the same road shape gives the same s in any city (a fixed
    unit scaling, no per-city standardisation)."""
    import numpy as np
    import pandas as pd

    from trajzoo.data.city import STRUCTURAL_SCALE, road_graph_from_tables
    from trajzoo.roads.features import STRUCTURAL_COLUMNS

    def tables(rows):
        s = pd.DataFrame(rows, columns=STRUCTURAL_COLUMNS)
        s.insert(0, "segment_id", np.arange(len(rows)))
        a = pd.DataFrame({"segment_id": np.arange(len(rows)), "length": np.arange(len(rows)) + 10.0,
                          "lanes": np.arange(len(rows)) % 3 + 1})
        t = pd.DataFrame({"src": [0], "dst": [1], "prob": [1.0]})
        return s, a, t

    shared_row = [150.0, 40.0, 90.0, 2500.0, 0.0008, -0.0011]  # metres, m^2, degrees
    city_a = road_graph_from_tables("a", *tables([shared_row, [10.0, 5.0, 7.0, 4.0, 0.0, 0.0]]))
    city_b = road_graph_from_tables("b", *tables([shared_row, [900.0, 300.0, 600.0, 9e4, 0.01, 0.02],
                                                  [500.0, 100.0, 250.0, 3e4, -0.005, 0.003]]))
    expected = torch.tensor(np.array(shared_row) * STRUCTURAL_SCALE, dtype=torch.float32)
    assert torch.allclose(city_a.structural[0], expected) and torch.allclose(city_b.structural[0], expected)
    assert torch.allclose(expected, torch.tensor([1.5, 0.4, 0.9, 0.25, 0.8, -1.1]))
