"""Run-wide training options (trajzoo.training.options): DataLoader batches in the same order
whatever the workers, the mixed-precision switch, TensorBoard logs beside the history, the config
parsing and the determinism settings."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trajzoo.data.city import iterate_batches
from trajzoo.training.engine import TrainSchedule, train
from trajzoo.training.options import (RunOptions, apply_determinism, current_options, options_from_config,
                                      run_options)


def _rows(n=10):
    rng = np.random.default_rng(0)
    return [{"trip_id": f"t{i}", "roads": rng.integers(0, 5, 3 + i % 4), "seconds": np.arange(3 + i % 4, dtype=np.float32),
             "day_of_week": np.zeros(3 + i % 4, np.int64), "minute_of_day": np.zeros(3 + i % 4, np.int64)}
            for i in range(n)]


def _batches(rows, workers):
    with run_options(RunOptions(loader_workers=workers)):
        return [(idx.tolist(), b.trip_ids, b.roads.clone())
                for idx, b in iterate_batches(rows, 3, shuffle=True, generator=torch.Generator().manual_seed(5))]


def test_dataloader_workers_do_not_change_the_batches():
    rows = _rows()
    one, two = _batches(rows, 0), _batches(rows, 2)
    assert [b[0] for b in one] == [b[0] for b in two] and [b[1] for b in one] == [b[1] for b in two]
    assert all(torch.equal(a[2], b[2]) for a, b in zip(one, two))
    # the same order as a plain randperm of the generator (what the loop did before the DataLoader)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(5)).tolist()
    assert [i for b in one for i in b[0]] == order


def test_options_scope_and_config():
    assert current_options() == RunOptions()
    with run_options(RunOptions(amp=True)):
        assert current_options().amp
    assert current_options() == RunOptions()
    cpu = options_from_config({"amp": True}, "cpu")
    assert (cpu.amp, cpu.loader_workers, cpu.pin_memory, cpu.tensorboard_dir) == (True, 0, False, None)
    assert options_from_config({"loader_workers": 3}, "cpu").loader_workers == 3
    with pytest.raises(ValueError, match="unknown key"):
        options_from_config({"amp_typo": True}, "cpu")


def _fit(options, tmp_path=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    y = x.sum(1, keepdim=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    history = []
    with run_options(options):
        train(model, opt, lambda m, b: nn.functional.mse_loss(m(b[0]).float(), b[1]),
              lambda: [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)], TrainSchedule(epochs=3),
              phase="pretrain:toy", history=history)
    return history, model


def test_mixed_precision_switch_changes_the_steps_only_when_on():
    base, _ = _fit(RunOptions())
    again, _ = _fit(RunOptions())
    amp, _ = _fit(RunOptions(amp=True))  # bfloat16 autocast on CPU
    assert [h["train_loss"] for h in base] == [h["train_loss"] for h in again]
    assert all(np.isfinite(h["train_loss"]) for h in amp)
    assert [h["train_loss"] for h in amp] != [h["train_loss"] for h in base]
    assert amp[-1]["train_loss"] < amp[0]["train_loss"]  # still trains


def test_tensorboard_logs_every_history_row(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    history, _ = _fit(RunOptions(tensorboard_dir=tmp_path / "tb"))
    acc = EventAccumulator(str(tmp_path / "tb" / "pretrain_toy"))
    acc.Reload()
    events = acc.Scalars("train_loss")
    assert [e.step for e in events] == [0, 1, 2]
    np.testing.assert_allclose([e.value for e in events], [h["train_loss"] for h in history], rtol=1e-6)


def test_determinism_settings():
    apply_determinism()
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def test_mixed_precision_never_resumes_a_full_precision_checkpoint(tmp_path):
    from trajzoo.training.checkpoints import CheckpointStore

    def fit(options):
        torch.manual_seed(0)
        model = nn.Linear(4, 1)
        x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
        history = []
        with run_options(options):
            train(model, torch.optim.SGD(model.parameters(), lr=0.05), lambda m, b: m(b).float().pow(2).mean(),
                  lambda: [x], TrainSchedule(epochs=2), phase="p", history=history,
                  store=CheckpointStore(tmp_path, "same-fingerprint"))
        return history

    full = fit(RunOptions())
    amp = fit(RunOptions(amp=True))  # same store and fingerprint: must train, not resume
    assert len(amp) == 2 and [h["train_loss"] for h in amp] != [h["train_loss"] for h in full]
