"""Episodic cross-city meta-learning (MetaTRL eqs. 1-4), checked mechanically: one meta step is
theta - alpha_meta * mean(gradient on source TEST at the adapted source parameters); after eq. 3
the target holds the meta model's shared tensors bitwise and its own fresh private ones; a seed
fixes the weights and a killed run resumes to them."""
from __future__ import annotations

import copy
import logging

import pytest
import torch

from trajzoo.data.city import CityData, collate, trip_rows
from trajzoo.training.loop import RunContext
from trajzoo_metatrl.meta_learning import (MetaModel, PretrainSchedule, SourceTask, make_optimizer, meta_episode,
                                           meta_pretrain, new_pretrainer)
from trajzoo_metatrl.model import MetaTRLConfig
from trajzoo_metatrl.objective import MetaTRLPretrainer
from trajzoo_metatrl.parameters import is_shared, private_parameters, shared_parameters

from metatrl_toy import toy_city


CONFIG = MetaTRLConfig(d_model=16, heads=2, ffn_dim=32, num_buckets=8, gat_layers=1, layers=1)


def _batches(city: CityData, split: str, size: int) -> list:
    rows = trip_rows(city.split(split))
    return [collate(rows[i:i + size]) for i in range(0, len(rows), size)]


def _reference_meta_step(meta_before: dict, models: list, cities: list, k: int, alpha_src: float,
                         alpha_meta: float, gen: torch.Generator) -> dict:
    """theta - alpha_meta * mean_s grad_theta L^pre(TEST_s) at the source parameters adapted by k
    plain gradient steps (eq. 1) from the clone of theta -- written out with autograd.grad."""
    grads = []
    for model, city in zip(models, cities):
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, v in meta_before.items():
                params[n].copy_(v)  # Parameters Clone
        train, test = _batches(city, "train", 4), _batches(city, "test", 4)
        for batch in train[:k]:  # eq. 1, plain step
            loss = model.loss(batch, city.graph, gen)[0]
            g = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            with torch.no_grad():
                for p, gp in zip(params.values(), g):
                    if gp is not None:
                        p.sub_(alpha_src * gp)
        shared = {n: p for n, p in params.items() if is_shared(n)}
        query = model.loss(test[0], city.graph, gen)[0]
        g = torch.autograd.grad(query, list(shared.values()), allow_unused=True)
        grads.append({n: (gp if gp is not None else torch.zeros_like(p)) for (n, p), gp in zip(shared.items(), g)})
    return {n: v - alpha_meta * torch.stack([g[n] for g in grads]).mean(0) for n, v in meta_before.items()}


def test_one_meta_step_is_theta_minus_alpha_mean_test_gradient_at_adapted_parameters():
    """Eq. 2 with a plain step, two source cities: the library's episode equals the written-out
    reference (TRAIN for eq. 1, TEST for eq. 2, gradient after adaptation, minus sign)."""
    cities = [toy_city("a", 1), toy_city("b", 3, attribute_dim=7)]
    torch.manual_seed(0)
    target = MetaTRLPretrainer(10, 5, CONFIG)
    sources = [MetaTRLPretrainer(10, 5, CONFIG), MetaTRLPretrainer(10, 7, CONFIG)]
    meta = MetaModel(target)
    with torch.no_grad():  # a meta state distinct from every source's own shared values
        for p in meta.values:
            p.add_(0.05 * torch.randn(p.shape))
    meta_before = {n: v.clone() for n, v in meta.state().items()}
    reference_models = [copy.deepcopy(m) for m in sources]
    k, alpha_src, alpha_meta = 2, 0.05, 0.5
    gen = torch.Generator().manual_seed(7)
    ref_gen = torch.Generator().manual_seed(7)

    tasks = [SourceTask(c.name, m, make_optimizer("sgd", m.parameters(), alpha_src), c.graph,
                        iter(_batches(c, "train", 4)), iter(_batches(c, "test", 4)))
             for c, m in zip(cities, sources)]
    meta_episode(meta, make_optimizer("sgd", meta.parameters(), alpha_meta), tasks, k, 1, gen, "cpu")
    expected = _reference_meta_step(meta_before, reference_models, cities, k, alpha_src, alpha_meta, ref_gen)

    moved = max(float((expected[n] - meta_before[n]).abs().max()) for n in meta_before)
    assert moved > 1e-3, "the reference step is too small to tell a wrong gradient apart"
    for n, v in meta.state().items():
        assert torch.allclose(v, expected[n], rtol=1e-5, atol=1e-6), n
    # eq. 1 adapted the sources' private parameters as the reference did
    for model, ref in zip(sources, reference_models):
        for n, p in private_parameters(model).items():
            assert torch.allclose(p, private_parameters(ref)[n], rtol=1e-5, atol=1e-6), n


def _run(seed: int, sources: bool, tmp_path, target_epochs: int = 1, **schedule):
    torch.manual_seed(seed)
    tar = toy_city("tar", 2)
    srcs = [toy_city("src", 1)] if sources else []
    ctx = RunContext(torch.device("cpu"), seed, tmp_path / f"ck{seed}{sources}{target_epochs}", logging.getLogger("test"))
    sched = PretrainSchedule(**{"meta_epochs": 2, "episodes": 3, "source_steps": 2, "query_batches": 1,
                                "target_epochs": target_epochs, "batch_size": 8, **schedule})
    return meta_pretrain(tar, srcs, CONFIG, sched, ctx), ctx


def test_eq3_target_gets_meta_shared_bitwise_and_keeps_its_fresh_private(tmp_path):
    """After eq. 3 (no target epoch): shared tensors == meta model's, private == the target's own
    fresh initialisation (the target is initialised first from the seed)."""
    result, _ = _run(0, True, tmp_path, target_epochs=0)
    torch.manual_seed(0)
    fresh = new_pretrainer(toy_city("tar", 2), CONFIG, "cpu")
    meta = result.meta.state()
    shared = shared_parameters(result.target)
    assert set(shared) == set(meta)
    for n, p in shared.items():
        assert torch.equal(p, meta[n]), f"shared {n} differs from the meta model"
    for n, p in private_parameters(result.target).items():
        assert torch.equal(p, private_parameters(fresh)[n]), f"private {n} is not the fresh initialisation"
    # the meta phase moved the shared parameters, so a missing clone would be seen above
    assert any(not torch.equal(meta[n], p) for n, p in shared_parameters(fresh).items())
    for n, v in result.initial_shared.items():
        assert torch.equal(v, shared_parameters(fresh)[n])


def test_meta_phase_moves_the_meta_model_every_epoch(tmp_path):
    _, ctx = _run(0, True, tmp_path)
    movement = [h["meta_movement"] for h in ctx.history if h["phase"] == "meta:src"]
    assert len(movement) == 2 and 0 < movement[0] and movement[1] != movement[0]


def test_meta_pretrain_same_seed_same_weights_and_checkpoints(tmp_path):
    a, ctx = _run(0, True, tmp_path)
    b, _ = _run(0, True, tmp_path / "again")
    for (n, p), q in zip(a.target.state_dict().items(), b.target.state_dict().values()):
        assert torch.equal(p, q), n
    names = sorted(p.name for p in ctx.checkpoint_dir.iterdir())
    assert names == ["meta-epoch-000.pt", "meta-epoch-001.pt", "target-epoch-000.pt"]
    assert [h["phase"] for h in ctx.history] == ["meta:src", "meta:src", "target:tar"]


def test_in_city_has_no_meta_model(tmp_path):
    result, ctx = _run(0, False, tmp_path)
    assert result.meta is None
    assert [h["phase"] for h in ctx.history] == ["target:tar"]


def test_schedule_is_a_config_class_with_ranges():
    with pytest.raises(ValueError, match="meta_epoch"):
        PretrainSchedule.from_dict({"meta_epoch": 3})
    with pytest.raises(ValueError, match="models.metatrl.pretrain.source_steps must be >= 1"):
        PretrainSchedule.from_dict({"source_steps": 0}, key="models.metatrl.pretrain")
    with pytest.raises(ValueError, match="meta_optimizer"):
        PretrainSchedule(meta_optimizer="rmsprop")
    default = PretrainSchedule()
    assert default.meta_optimizer == "sgd"
    assert PretrainSchedule.from_dict(default.to_dict()) == default


def test_default_schedule_shows_the_source_a_meaningful_share_of_its_data():
    """config.yaml's schedule: at least one pass over 4,000 San Francisco train trips."""
    import yaml
    from pathlib import Path

    section = yaml.safe_load((Path(__file__).resolve().parents[2] / "config.yaml").read_text())
    s = PretrainSchedule.from_dict(section["models"]["metatrl"]["pretrain"])
    assert s.meta_epochs * s.episodes * s.source_steps * s.batch_size >= 4000
    assert s.meta_optimizer == "sgd"


def test_killed_pretraining_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """Stop after the first meta or target epoch (as a SIGKILL would), start again: same weights."""
    import trajzoo_metatrl.meta_learning as ml

    sched = PretrainSchedule(meta_epochs=2, episodes=2, source_steps=2, query_batches=1, target_epochs=3,
                             batch_size=8)

    def run(folder, crash_after=None):
        torch.manual_seed(0)
        ctx = RunContext(torch.device("cpu"), 0, folder, logging.getLogger("test"))
        if crash_after is not None:
            real_save = ml.CheckpointStore.save

            def save_then_crash(self, phase, epoch, state):
                path = real_save(self, phase, epoch, state)
                if (phase, epoch) == crash_after:
                    raise KeyboardInterrupt("simulated kill")
                return path
            monkeypatch.setattr(ml.CheckpointStore, "save", save_then_crash)
        try:
            return meta_pretrain(toy_city("tar", 2), [toy_city("src", 1)], CONFIG, sched, ctx).target, ctx
        finally:
            monkeypatch.undo()

    straight, ctx_a = run(tmp_path / "a")
    for crash in (("meta", 0), ("target", 0)):
        folder = tmp_path / f"b{crash[0]}"
        with pytest.raises(KeyboardInterrupt):
            run(folder, crash_after=crash)
        resumed, ctx_b = run(folder)
        for (n, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
            assert torch.equal(p, q), (crash, n)
        assert ctx_b.history == ctx_a.history


def test_checkpoints_of_another_config_are_not_resumed(tmp_path):
    ctx = RunContext(torch.device("cpu"), 0, tmp_path, logging.getLogger("test"))
    sched = PretrainSchedule(meta_epochs=0, target_epochs=1, batch_size=8)
    torch.manual_seed(0)
    first = meta_pretrain(toy_city("tar", 2), [], CONFIG, sched, ctx).target
    other = MetaTRLConfig(d_model=16, heads=2, ffn_dim=32, num_buckets=8, gat_layers=1, layers=1, gamma=0.3)
    ctx2 = RunContext(torch.device("cpu"), 0, tmp_path, logging.getLogger("test"))
    torch.manual_seed(0)
    second = meta_pretrain(toy_city("tar", 2), [], other, sched, ctx2).target
    # a resumed run would return the first run's final weights unchanged
    assert any(not torch.equal(p, q) for p, q in zip(first.state_dict().values(), second.state_dict().values()))
    assert ctx2.history[0]["train_loss"] != ctx.history[0]["train_loss"]
