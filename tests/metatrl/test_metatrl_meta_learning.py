"""Cross-city meta-learning (MetaTRL eqs. 1-4): the meta update moves the meta model's shared
parameters, private parameters never cross cities, and a seed fixes the weights."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from trajzoo.data.city import CityData
from trajzoo.training.loop import RunContext
from trajzoo_metatrl.meta_learning import (MetaModel, PretrainSchedule, clone_shared_parameters, meta_pretrain,
                                           meta_update, query_gradient, source_inner_loop)
from trajzoo_metatrl.model import MetaTRLConfig
from trajzoo_metatrl.objective import MetaTRLPretrainer
from trajzoo_metatrl.parameters import private_parameters, shared_parameters
from trajzoo.data.city import trip_rows

from metatrl_toy import build_graph


def toy_city(name: str, seed: int, n_trips: int = 24, attribute_dim: int | None = None) -> CityData:
    graph = build_graph(seed)
    if attribute_dim is not None:
        graph.attributes = torch.randn(graph.num_segments, attribute_dim, generator=torch.Generator().manual_seed(seed))
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_trips):
        n = int(rng.integers(4, 9))
        roads = rng.integers(0, graph.num_segments, n)
        seconds = np.concatenate([[0.0], np.cumsum(rng.uniform(5, 60, n - 1))]).astype(np.float32)
        rows.append({"trip_id": f"{name}{i:03d}", "roads": roads, "seconds": seconds,
                     "day_of_week": np.full(n, i % 7), "minute_of_day": (600 + seconds // 60).astype(np.int64),
                     "split": ("train", "train", "val", "test")[i % 4]})
    return CityData(name, "UTC", graph, pd.DataFrame(rows))


CONFIG = MetaTRLConfig(d_model=16, heads=2, ffn_dim=32, num_buckets=8, gat_layers=1, layers=1)


def test_meta_update_changes_shared_meta_parameters_only():
    src = toy_city("src", 1)
    model = MetaTRLPretrainer(src.graph.num_segments, 5, CONFIG)
    meta = MetaModel(model)
    before = {n: v.clone() for n, v in meta.state().items()}
    assert set(before) == set(shared_parameters(model))
    assert not any(n in meta.names for n in private_parameters(model))
    clone_shared_parameters(meta, model)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    source_inner_loop(model, opt, trip_rows(src.split("train")), src.graph, 2, 8, gen, "cpu")
    grads, _ = query_gradient(model, trip_rows(src.split("test")), src.graph, 1, 8, gen, "cpu")
    meta_opt = torch.optim.Adam(meta.parameters(), lr=1e-2)
    meta_update(meta, [grads], meta_opt)
    after = meta.state()
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert len(changed) > 0.5 * len(before), "the meta update left most shared parameters unchanged"


def test_target_gets_meta_shared_and_keeps_its_own_private_parameters():
    src, tar = toy_city("src", 1), toy_city("tar", 2, attribute_dim=7)
    source = MetaTRLPretrainer(src.graph.num_segments, 5, CONFIG)
    torch.manual_seed(123)
    target = MetaTRLPretrainer(tar.graph.num_segments, 7, CONFIG)
    target_private_before = {n: p.detach().clone() for n, p in private_parameters(target).items()}
    meta = MetaModel(source)
    with torch.no_grad():
        for p in meta.values:
            p.add_(1.0)  # make the meta values distinguishable
    clone_shared_parameters(meta, target)  # eq. 3
    for n, p in shared_parameters(target).items():
        assert torch.equal(p, meta.state()[n])
    for n, p in private_parameters(target).items():
        assert torch.equal(p, target_private_before[n]), f"private parameter {n} was overwritten"


def _run(seed: int, sources: bool, tmp_path):
    torch.manual_seed(seed)
    tar = toy_city("tar", 2)
    srcs = [toy_city("src", 1)] if sources else []
    ctx = RunContext(torch.device("cpu"), seed, tmp_path / f"ck{seed}{sources}", logging.getLogger("test"))
    sched = PretrainSchedule(meta_epochs=2, source_steps=2, query_batches=1, target_epochs=1, batch_size=8)
    model = meta_pretrain(tar, srcs, CONFIG, sched, ctx)
    return model, ctx


def test_meta_pretrain_same_seed_same_weights_and_checkpoints(tmp_path):
    a, ctx = _run(0, True, tmp_path)
    b, _ = _run(0, True, tmp_path)
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), n
    names = sorted(p.name for p in ctx.checkpoint_dir.iterdir())
    assert names == ["meta-epoch-000.pt", "meta-epoch-001.pt", "target-epoch-000.pt"]
    assert [h["phase"] for h in ctx.history] == ["meta:src", "meta:src", "target:tar"]


def test_meta_pretraining_changes_the_target_initialisation(tmp_path):
    with_meta, _ = _run(0, True, tmp_path)
    target_only, _ = _run(0, False, tmp_path)
    diff = [n for n, p in shared_parameters(with_meta).items()
            if not torch.equal(p, shared_parameters(target_only)[n])]
    assert diff, "source cities had no effect on the target's shared parameters"


def test_schedule_rejects_unknown_keys():
    with pytest.raises(ValueError, match="meta_epoch"):
        PretrainSchedule.from_dict({"meta_epoch": 3})


def test_killed_pretraining_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """Stop after the first target epoch (as a SIGKILL would), start again: same final weights."""
    import trajzoo_metatrl.meta_learning as ml

    sched = PretrainSchedule(meta_epochs=2, source_steps=2, query_batches=1, target_epochs=3, batch_size=8)

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
            return meta_pretrain(toy_city("tar", 2), [toy_city("src", 1)], CONFIG, sched, ctx), ctx
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
    sched = PretrainSchedule(meta_epochs=0, source_steps=1, query_batches=1, target_epochs=1, batch_size=8)
    torch.manual_seed(0)
    first = meta_pretrain(toy_city("tar", 2), [], CONFIG, sched, ctx)
    other = MetaTRLConfig(d_model=16, heads=2, ffn_dim=32, num_buckets=8, gat_layers=1, layers=1, gamma=0.3)
    ctx2 = RunContext(torch.device("cpu"), 0, tmp_path, logging.getLogger("test"))
    torch.manual_seed(0)
    second = meta_pretrain(toy_city("tar", 2), [], other, sched, ctx2)
    # a resumed run would return the first run's final weights unchanged
    assert any(not torch.equal(p, q) for p, q in zip(first.state_dict().values(), second.state_dict().values()))
    assert ctx2.history[0]["train_loss"] != ctx.history[0]["train_loss"]
