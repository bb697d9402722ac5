"""Pre-training heads and loss of MetaTRL (eqs. 19-20)."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from trajzoo.data.batch import RoadGraph, TrajectoryBatch, hide_times
from trajzoo.nn.span_mask import span_mask
from trajzoo_metatrl.masking import time_mask
from trajzoo_metatrl.model import MetaTRLConfig
from trajzoo_metatrl.objective import MetaTRLPretrainer
from trajzoo_metatrl.parameters import private_parameters, shared_parameters

ABLATIONS = ["use_meta_knowledge", "use_time_encoder", "use_interval", "use_knowledge_fusion", "use_time_mask"]
STATS = {"loss", "road_ce", "time_mse", "road_acc"}


def _model(config: MetaTRLConfig) -> MetaTRLPretrainer:
    torch.manual_seed(0)
    return MetaTRLPretrainer(10, 5, config)


def test_heads_shapes(small_config: MetaTRLConfig, batch: TrajectoryBatch, graph: RoadGraph) -> None:
    logits, minutes = _model(small_config)(batch, graph)
    assert logits.shape == (*batch.roads.shape, 10)
    assert minutes.shape == batch.roads.shape


def test_loss_finite_and_gradients_reach_shared_and_private(
    small_config: MetaTRLConfig, make_batch, graph: RoadGraph
) -> None:
    model = _model(small_config)
    batch = make_batch([20, 16, 12, 9, 6])
    loss, stats = model.loss(batch, graph, torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert STATS <= set(stats) and all(math.isfinite(v) for v in stats.values())
    assert stats["n_road_masked"] > 0 and stats["n_time_masked"] > 0
    loss.backward()
    for group in (shared_parameters(model), private_parameters(model)):
        for name, p in group.items():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert any(p.grad.abs().sum() > 0 for p in group.values())
    for name in ["encoder.road_encoder.shared_mkf.fc1.weight", "encoder.temporal_encoder.shared_time_mask",
                 "encoder.temporal_encoder.shared_interval_mlp.fc1.weight",
                 "encoder.trajectory_encoder.shared_road_mask_token",
                 "encoder.trajectory_encoder.layers.0.shared_w_q.weight",
                 "encoder.road_encoder.private_naf.fc1.weight", "private_road_head.weight", "private_time_head.weight"]:
        assert dict(model.named_parameters())[name].grad.abs().sum() > 0, name


def test_loss_matches_equation_20(small_config: MetaTRLConfig, make_batch, graph: RoadGraph) -> None:
    cfg = replace(small_config, gamma=0.3)
    model = _model(cfg)
    batch = make_batch([20, 16, 12, 9, 6], seed=4)
    loss, stats = model.loss(batch, graph, torch.Generator().manual_seed(11))

    gen = torch.Generator().manual_seed(11)
    spans = span_mask(batch.padding_mask, cfg.mask_ratio, cfg.mean_span_length, gen)
    times = time_mask(batch.padding_mask, spans, cfg.time_mask_ratio, gen)
    logits, minutes = model(hide_times(batch, spans | times), graph, spans)
    ce = F.cross_entropy(logits[spans], batch.roads[spans])
    mse = ((minutes[times] - batch.seconds[times] / 60.0) ** 2).mean()
    assert math.isclose(stats["road_ce"], ce.item(), rel_tol=1e-5)
    assert math.isclose(stats["time_mse"], mse.item(), rel_tol=1e-5)
    assert math.isclose(loss.item(), 0.3 * ce.item() + 0.7 * mse.item(), rel_tol=1e-5)
    acc = (logits[spans].argmax(-1) == batch.roads[spans]).float().mean().item()
    assert math.isclose(stats["road_acc"], acc, rel_tol=1e-6)


def test_loss_reproducible_with_generator(
    small_config: MetaTRLConfig, batch: TrajectoryBatch, graph: RoadGraph
) -> None:
    model = _model(small_config)
    a, _ = model.loss(batch, graph, torch.Generator().manual_seed(5))
    b, _ = model.loss(batch, graph, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_without_time_mask_loss_is_road_ce(
    small_config: MetaTRLConfig, batch: TrajectoryBatch, graph: RoadGraph
) -> None:
    model = _model(replace(small_config, use_time_mask=False))
    loss, stats = model.loss(batch, graph, torch.Generator().manual_seed(0))
    assert stats["time_mse"] == 0.0 and stats["n_time_masked"] == 0
    assert stats["road_ce"] > 0
    assert math.isclose(loss.item(), stats["road_ce"], rel_tol=1e-6)


def test_empty_masks_give_zero_loss(small_config: MetaTRLConfig, make_batch, graph: RoadGraph) -> None:
    model = _model(small_config)
    batch = make_batch([1, 1, 1])  # nothing can be masked: position 0 never is
    loss, stats = model.loss(batch, graph, torch.Generator().manual_seed(0))
    assert loss.item() == 0.0 and stats["road_ce"] == 0.0 and stats["time_mse"] == 0.0
    assert stats["road_acc"] == 0.0
    loss.backward()  # still differentiable


def test_empty_time_mask_only(small_config: MetaTRLConfig, make_batch, graph: RoadGraph) -> None:
    model = _model(replace(small_config, time_mask_ratio=0.0, gamma=0.25))
    loss, stats = model.loss(make_batch([8, 6]), graph, torch.Generator().manual_seed(0))
    assert stats["time_mse"] == 0.0 and stats["road_ce"] > 0
    assert math.isclose(loss.item(), 0.25 * stats["road_ce"], rel_tol=1e-6)


@pytest.mark.parametrize("disabled", ABLATIONS)
def test_ablations_train(disabled: str, small_config: MetaTRLConfig, make_batch, graph: RoadGraph) -> None:
    model = _model(replace(small_config, **{disabled: False}))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    batch = make_batch([12, 10, 7])
    loss, _ = model.loss(batch, graph, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss.backward()
    optimiser.step()
    assert any(not torch.equal(before[n], p) for n, p in shared_parameters(model).items())
    assert any(not torch.equal(before[n], p) for n, p in private_parameters(model).items())
