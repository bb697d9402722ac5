"""MetaTRL configuration and full encoder (road + temporal + trajectory encoders)."""
from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest
import torch

from trajzoo.data.batch import RoadGraph, TrajectoryBatch, hide_times
from trajzoo_metatrl.model import MetaTRLConfig, MetaTRLEncoder
from trajzoo_metatrl.parameters import classify_or_raise, shared_parameters

ABLATIONS = ["use_meta_knowledge", "use_time_encoder", "use_interval", "use_knowledge_fusion", "use_time_mask"]


def _encoder(config: MetaTRLConfig, seed: int = 0) -> MetaTRLEncoder:
    torch.manual_seed(seed)
    return MetaTRLEncoder(10, 5, config)


def test_config_defaults_and_from_dict() -> None:
    cfg = MetaTRLConfig()
    assert (cfg.d_model, cfg.gat_layers, cfg.layers, cfg.heads, cfg.ffn_dim) == (64, 2, 2, 4, 128)
    assert (cfg.dropout, cfg.num_buckets, cfg.mask_ratio, cfg.mean_span_length) == (0.0, 32, 0.2, 3)
    assert (cfg.time_mask_ratio, cfg.gamma) == (0.2, 0.5)
    assert all(getattr(cfg, flag) for flag in ABLATIONS)
    expected = MetaTRLConfig(d_model=32, use_interval=False)
    assert MetaTRLConfig.from_dict({"d_model": 32, "use_interval": False}) == expected
    with pytest.raises(ValueError, match="bogus.*typo_key|typo_key.*bogus"):
        MetaTRLConfig.from_dict({"d_model": 32, "bogus": 1, "typo_key": 2})
    with pytest.raises(ValueError, match="divisible"):
        MetaTRLConfig(d_model=30, heads=4)
    with pytest.raises(ValueError, match="mask_ratio"):
        MetaTRLConfig(mask_ratio=0.0)


def test_forward_and_embed_shapes(small_config: MetaTRLConfig, batch: TrajectoryBatch, graph: RoadGraph) -> None:
    enc = _encoder(small_config)
    assert enc.d_model == 16
    z = enc(batch, graph)
    assert z.shape == (*batch.roads.shape, 16)
    assert torch.isfinite(z).all()
    emb = enc.embed(batch, graph)
    assert emb.shape == (batch.roads.shape[0], 16)
    real = (~batch.padding_mask).unsqueeze(-1).float()
    assert torch.allclose(emb, (z * real).sum(1) / real.sum(1), atol=1e-6)


def test_deterministic_given_seed(small_config: MetaTRLConfig, batch: TrajectoryBatch, graph: RoadGraph) -> None:
    assert torch.equal(_encoder(small_config, 3)(batch, graph), _encoder(small_config, 3)(batch, graph))
    assert not torch.equal(_encoder(small_config, 3)(batch, graph), _encoder(small_config, 4)(batch, graph))


@pytest.mark.parametrize("disabled", [None, *ABLATIONS])
def test_padding_invariance(
    disabled: str | None, small_config: MetaTRLConfig, batch: TrajectoryBatch, graph: RoadGraph, pad_batch
) -> None:
    cfg = replace(small_config, **({disabled: False} if disabled else {}))
    enc = _encoder(cfg)
    road_mask = torch.zeros_like(batch.padding_mask)
    road_mask[0, 3:5] = True
    z = enc(batch, graph, road_mask)
    longer = pad_batch(batch, 4)
    z_long = enc(longer, graph, torch.cat([road_mask, torch.zeros(road_mask.shape[0], 4, dtype=torch.bool)], 1))
    real = ~batch.padding_mask
    assert torch.allclose(z_long[:, : z.shape[1]][real], z[real], atol=1e-5)
    assert torch.allclose(enc.embed(longer, graph), enc.embed(batch, graph), atol=1e-5)


def test_masked_roads_and_hidden_times_do_not_leak(
    small_config: MetaTRLConfig, batch: TrajectoryBatch, graph: RoadGraph
) -> None:
    enc = _encoder(small_config)
    road_mask = torch.zeros_like(batch.padding_mask)
    road_mask[0, 2:4] = True
    road_mask[1, 5] = True
    hidden = hide_times(batch, road_mask)
    z = enc(hidden, graph, road_mask)
    roads = batch.roads.clone()
    roads[road_mask] = (roads[road_mask] + 1) % 10
    seconds = batch.seconds.clone()
    seconds[road_mask] += 1000.0
    tampered = hide_times(replace(batch, roads=roads, seconds=seconds), road_mask)
    assert torch.equal(enc(tampered, graph, road_mask), z)
    # ... whereas the unmasked road ids do matter
    assert not torch.allclose(enc(replace(hidden, roads=roads), graph), enc(hidden, graph))


def test_road_encoder_runs_over_graph(small_config: MetaTRLConfig, batch: TrajectoryBatch, graph: RoadGraph) -> None:
    enc = _encoder(small_config)
    changed = replace(graph, transition_prob=graph.transition_prob.flip(0))
    assert not torch.allclose(enc(batch, graph), enc(batch, changed))


@pytest.mark.parametrize("disabled", ABLATIONS)
def test_ablation_flags(disabled: str, small_config: MetaTRLConfig, batch: TrajectoryBatch, graph: RoadGraph) -> None:
    enc = _encoder(replace(small_config, **{disabled: False}))
    classify_or_raise(enc)
    z = enc(batch, graph)
    assert z.shape == (*batch.roads.shape, 16) and torch.isfinite(z).all()
    names = " ".join(shared_parameters(enc))
    expected_missing = {
        "use_meta_knowledge": "shared_mkf",
        "use_time_encoder": "shared_time_mask",
        "use_interval": "shared_bucket_embedding",
        "use_knowledge_fusion": "shared_w_q",
    }.get(disabled)
    if expected_missing is not None:
        assert expected_missing not in names
    full = " ".join(shared_parameters(_encoder(small_config)))
    for fragment in ["shared_mkf", "shared_time_mask", "shared_bucket_embedding", "shared_w_q"]:
        assert fragment in full


def test_invalid_inputs_raise(
    small_config: MetaTRLConfig, batch: TrajectoryBatch, graph: RoadGraph, make_graph
) -> None:
    enc = _encoder(small_config)
    other = dataclasses.replace(make_graph(), num_segments=11)
    with pytest.raises(ValueError, match="segments"):
        enc(batch, other)
    roads = batch.roads.clone()
    roads[0, 0] = 10
    with pytest.raises(ValueError, match="ids"):
        enc(replace(batch, roads=roads), graph)
    with pytest.raises(ValueError, match="road_mask"):
        enc(batch, graph, torch.zeros(1, 1, dtype=torch.bool))
