"""Fine-tuning: early stopping keeps the best epoch, and a killed run resumes to the same metrics."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from trajzoo.registry import get_model, get_task
from trajzoo.training import checkpoints
from trajzoo.training.loop import FineTuneConfig, RunContext, finetune_and_evaluate

from test_tasks import toy_city

HP = {"d_model": 16, "heads": 2, "ffn_dim": 32, "layers": 1, "gat_layers": 1}


def run(folder, task_name, crash_epoch=None, monkeypatch=None):
    city = toy_city(n_trips=60)
    torch.manual_seed(0)
    encoder = get_model("metatrl").build_encoder(city.graph, HP)
    task = get_task(task_name)
    ctx = RunContext(torch.device("cpu"), 0, folder, logging.getLogger("test"))
    if crash_epoch is not None:
        real = checkpoints.CheckpointStore.save

        def save_then_crash(self, phase, epoch, state):
            path = real(self, phase, epoch, state)
            if epoch == crash_epoch:
                raise KeyboardInterrupt("simulated kill")
            return path
        monkeypatch.setattr(checkpoints.CheckpointStore, "save", save_then_crash)
    try:
        return finetune_and_evaluate(encoder, city.graph, task, task.prepare(city),
                                     FineTuneConfig(epochs=4, patience=10, batch_size=8), ctx), ctx
    finally:
        if monkeypatch is not None:
            monkeypatch.undo()


@pytest.mark.parametrize("task_name", ["tte", "cla_calltype"])
def test_killed_finetuning_resumes_to_the_same_metrics(tmp_path, monkeypatch, task_name):
    straight, ctx_a = run(tmp_path / "a", task_name)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", task_name, crash_epoch=1, monkeypatch=monkeypatch)
    assert [p.name for p in (tmp_path / "b").iterdir()] == [f"{task_name}-epoch-001.pt"]  # only the latest kept
    resumed, ctx_b = run(tmp_path / "b", task_name)
    scalars = ("metrics", "n_train", "n_test", "best_epoch", "test_trip_ids", "label_mean", "label_std")
    assert {k: resumed[k] for k in scalars} == {k: straight[k] for k in scalars}
    assert np.array_equal(resumed["test_outputs"], straight["test_outputs"])  # the per-trip predictions too
    assert ctx_b.history == ctx_a.history and len(ctx_a.history) == 4


def test_best_validation_epoch_is_reported(tmp_path):
    result, ctx = run(tmp_path, "tte")
    losses = [h["val_loss"] for h in ctx.history]
    assert result["best_epoch"] == losses.index(min(losses))
    assert set(result["metrics"]) == {"MAE", "MAPE", "RMSE"}


def test_warmup_and_cosine_reach_the_engine(tmp_path):
    """With a learning-rate schedule the history gains an ``lr`` column: the rate of each epoch's
    last step, as :func:`trajzoo.training.engine.lr_factor` gives it."""
    from trajzoo.training.engine import lr_factor

    city = toy_city(n_trips=60)
    torch.manual_seed(0)
    encoder = get_model("metatrl").build_encoder(city.graph, HP)
    task = get_task("tte")
    data = task.prepare(city)
    ctx = RunContext(torch.device("cpu"), 0, tmp_path, logging.getLogger("test"))
    cfg = FineTuneConfig(epochs=3, patience=10, batch_size=8, lr=1e-2, warmup_steps=2, cosine=True, grad_clip=1.0)
    finetune_and_evaluate(encoder, city.graph, task, data, cfg, ctx)
    per_epoch = -(-len(data.rows["train"]) // 8)
    assert [h["lr"] for h in ctx.history] == pytest.approx(
        [1e-2 * lr_factor((e + 1) * per_epoch - 1, 2, True, 3 * per_epoch) for e in range(3)], rel=1e-12)
    assert ctx.history[0]["lr"] > ctx.history[1]["lr"] > ctx.history[2]["lr"] > 0
