"""The one training engine (trajzoo.training.engine): early stopping, learning-rate warm-up and
cosine, gradient clipping, step budgets, and bitwise-exact resume after a kill."""
from __future__ import annotations

import logging
import math

import pytest
import torch
from torch import nn

from trajzoo.training import checkpoints
from trajzoo.training.checkpoints import CheckpointStore
from trajzoo.training.engine import StepLoss, Trainer, TrainSchedule, lr_factor, train

LOG = logging.getLogger("test.engine")


class Toy(nn.Module):
    """Linear regression with dropout (dropout draws from the global torch RNG)."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.lin = nn.Linear(4, 1)

    def forward(self, x):
        return self.lin(self.drop(x)).squeeze(-1)


def toy_data(n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=g)


def toy_batches(x, y, batch_size, gen):
    """Factory of one shuffled pass (shuffle from ``gen``)."""
    def one_pass():
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]
    return one_pass


def toy_step_loss(gen):
    """MSE plus a mask drawn from ``gen`` (like the models' masks): both RNGs matter on resume."""
    def step_loss(model, batch):
        xb, yb = batch
        keep = torch.rand(len(xb), generator=gen) > 0.1
        err = (model(xb) - yb) ** 2
        return StepLoss((err * keep).sum() / keep.sum().clamp_min(1), weight=len(xb))
    return step_loss


def test_early_stopping_stops_at_the_right_epoch_and_restores_the_best_weights():
    torch.manual_seed(0)
    model = Toy()
    x, y = toy_data()
    gen = torch.Generator().manual_seed(1)
    scripted = iter([3.0, 2.0, 2.5, 1.5, 1.8, 1.9, 0.1, 0.1])  # best epoch 3; epochs 4, 5 worse -> stop
    snapshots = []

    def val_loss(m):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return next(scripted)

    history = []
    fit = train(model, torch.optim.SGD(model.parameters(), lr=0.05), toy_step_loss(gen), toy_batches(x, y, 5, gen),
                TrainSchedule(epochs=8, patience=2), phase="ft", history=history, generator=gen, val_loss=val_loss)
    assert [h["epoch"] for h in history] == [0, 1, 2, 3, 4, 5]
    assert fit.stopped and fit.best_epoch == 3 and fit.best_val == 1.5
    assert [h["val_loss"] for h in history] == [3.0, 2.0, 2.5, 1.5, 1.8, 1.9]
    assert not torch.equal(snapshots[3]["lin.weight"], snapshots[5]["lin.weight"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[3][k]), k
    assert set(history[0]) == {"phase", "epoch", "train_loss", "val_loss"}  # no lr column without a schedule


def test_without_patience_every_epoch_runs_and_the_last_weights_stay():
    torch.manual_seed(0)
    model = Toy()
    x, y = toy_data()
    gen = torch.Generator().manual_seed(1)
    fit = train(model, torch.optim.SGD(model.parameters(), lr=0.05), toy_step_loss(gen), toy_batches(x, y, 5, gen),
                TrainSchedule(epochs=3), phase="p", history=[], generator=gen, val_loss=lambda m: 1.0)
    assert fit.best_epoch == 2 and not fit.stopped and fit.steps == 3 * 4
    with pytest.raises(ValueError, match="validation loss"):
        train(model, torch.optim.SGD(model.parameters(), lr=0.05), toy_step_loss(gen), toy_batches(x, y, 5, gen),
              TrainSchedule(epochs=3, patience=1), phase="p", history=[])


class RecordingSGD(torch.optim.SGD):
    """SGD that records the learning rate each step is taken with."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[float] = []

    def step(self, closure=None):
        self.seen.append(self.param_groups[0]["lr"])
        return super().step(closure)


def test_warmup_and_cosine_give_the_exact_learning_rate_of_every_step():
    p = nn.Parameter(torch.zeros((), dtype=torch.float64))
    holder = nn.Module()
    holder.p = p
    opt = RecordingSGD([p], lr=0.1)
    batches = lambda: iter(range(5))  # noqa: E731  (5 steps per epoch, 2 epochs: T = 10)
    history = []
    train(holder, opt, lambda m, b: m.p * 1.0, batches, TrainSchedule(epochs=2, warmup_steps=2, cosine=True),
          steps_per_epoch=5, phase="lr", history=history)
    # warm-up (s + 1) / W for s < W = 2, then 0.5 (1 + cos(pi (s - 2) / 8)) for s = 2 .. 9
    cos = [0.1 * 0.5 * (1 + math.cos(math.pi * j / 8)) for j in range(8)]
    expected = [0.05, 0.1, 0.1, cos[1], cos[2], cos[3], 0.05, cos[5], cos[6], cos[7]]
    assert opt.seen == pytest.approx(expected, rel=1e-12, abs=0)
    # gradient of p is 1: SGD moved p by exactly the sum of the learning rates it was given
    assert p.item() == pytest.approx(-sum(expected), rel=1e-12)
    assert [h["lr"] for h in history] == [opt.seen[4], opt.seen[9]]
    assert lr_factor(7, 0, True, 10, min_lr_ratio=0.2) == pytest.approx(0.2 + 0.8 * 0.5 * (1 + math.cos(0.7 * math.pi)))
    with pytest.raises(ValueError, match="total number of steps"):
        Trainer(holder, torch.optim.SGD([p], lr=0.1), lambda m, b: m.p, TrainSchedule(cosine=True))


def test_without_a_schedule_the_learning_rate_is_never_touched():
    p = nn.Parameter(torch.zeros(()))
    holder = nn.Module()
    holder.p = p
    opt = RecordingSGD([p], lr=0.1)
    train(holder, opt, lambda m, b: m.p * 1.0, lambda: iter(range(4)), TrainSchedule(epochs=2), phase="x",
          history=[])
    assert opt.seen == [0.1] * 8


@pytest.mark.parametrize("clip, expected", [
    (1.0, [3.0 / (5.0 + 1e-6), 4.0 / (5.0 + 1e-6)]),  # clip_grad_norm_: g * max_norm / (||g|| + 1e-6)
    (10.0, [3.0, 4.0]),  # norm 5 below the threshold: unchanged
    (0.0, [3.0, 4.0]),  # no clipping
])
def test_gradient_is_clipped_to_the_exact_norm(clip, expected):
    w = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    holder = nn.Module()
    holder.w = w
    g = torch.tensor([3.0, 4.0], dtype=torch.float64)  # ||g|| = 5
    trainer = Trainer(holder, torch.optim.SGD([w], lr=1.0), lambda m, b: (m.w * g).sum(),
                      TrainSchedule(grad_clip=clip))
    trainer.step(None)
    assert w.grad.tolist() == pytest.approx(expected, rel=1e-12)
    assert (-w.detach()).tolist() == pytest.approx(expected, rel=1e-12)  # SGD, lr 1: w = -clipped grad
    if clip == 1.0:
        assert w.grad.norm().item() == pytest.approx(1.0, abs=1e-6)


def test_step_budget_cycles_through_passes_and_a_cap_stops_a_pass():
    calls = {"passes": 0}

    def batches():
        calls["passes"] += 1
        return iter(range(3))

    p = nn.Parameter(torch.zeros(()))
    holder = nn.Module()
    holder.p = p
    trainer = Trainer(holder, torch.optim.SGD([p], lr=0.1), lambda m, b: m.p * 1.0)
    assert trainer.run_steps(batches, max_steps=7, repeat=True).steps == 7 and calls["passes"] == 3
    assert trainer.run_steps(batches, max_steps=7).steps == 3 and calls["passes"] == 4
    assert trainer.run_steps(batches, max_steps=2).steps == 2
    assert trainer.run_steps(lambda: iter(()), max_steps=5, repeat=True).steps == 0  # no endless loop
    with pytest.raises(ValueError, match="repeat_batches"):
        TrainSchedule(repeat_batches=True)


def _resumable_run(folder, seed_before_build=0):
    """Dropout (global RNG), shuffles and masks (generator), warm-up + cosine, clipping, patience."""
    x, y = toy_data(23)
    torch.manual_seed(seed_before_build)
    model = Toy()
    gen = torch.Generator().manual_seed(5)
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    history = []
    sched = TrainSchedule(epochs=5, grad_clip=0.5, patience=3, warmup_steps=4, cosine=True)
    xv, yv = toy_data(8, seed=9)

    def val_loss(m):
        m.eval()
        with torch.no_grad():
            return float(((m(xv) - yv) ** 2).mean())

    fit = train(model, opt, toy_step_loss(gen), toy_batches(x, y, 4, gen), sched, steps_per_epoch=6,
                phase="toy", history=history, generator=gen, store=CheckpointStore(folder, "fp", keep_last_only=True),
                val_loss=val_loss, logger=LOG)
    return model, history, fit


@pytest.mark.parametrize("k", [0, 2])
def test_resume_after_k_epochs_equals_an_uninterrupted_run_bitwise(tmp_path, monkeypatch, k):
    torch.manual_seed(0)
    straight, hist_a, fit_a = _resumable_run(tmp_path / "a")
    real = CheckpointStore.save

    def save_then_kill(self, phase, epoch, state):
        path = real(self, phase, epoch, state)
        if epoch == k:
            raise KeyboardInterrupt("simulated kill")
        return path

    monkeypatch.setattr(checkpoints.CheckpointStore, "save", save_then_kill)
    with pytest.raises(KeyboardInterrupt):
        _resumable_run(tmp_path / "b")
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [f"toy-epoch-{k:03d}.pt"]
    torch.manual_seed(123)  # the global RNG must come back from the checkpoint
    resumed, hist_b, fit_b = _resumable_run(tmp_path / "b", seed_before_build=77)
    for n, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[n]), n
    assert hist_b == hist_a and len(hist_a) > k + 1
    assert (fit_b.best_epoch, fit_b.steps) == (fit_a.best_epoch, fit_a.steps)
    assert fit_a.steps == 6 * len(hist_a) and "lr" in hist_a[0]
    assert torch.equal(torch.get_rng_state(), _rng_after(tmp_path / "c"))


def _rng_after(folder):
    torch.manual_seed(0)
    _resumable_run(folder)
    return torch.get_rng_state()


def _scripted_run(folder, history):
    """Patience 3 on scripted validation losses: best epoch 1, stop after epoch 4."""
    x, y = toy_data(12)
    torch.manual_seed(0)
    model = Toy()
    gen = torch.Generator().manual_seed(5)
    scripted = [2.0, 1.0, 1.5, 1.6, 1.7, 0.5, 0.4]
    fit = train(model, torch.optim.SGD(model.parameters(), lr=0.05), toy_step_loss(gen), toy_batches(x, y, 4, gen),
                TrainSchedule(epochs=7, patience=3), phase="es", history=history, generator=gen,
                store=CheckpointStore(folder, "fp"), val_loss=lambda m: scripted[len(history)])
    return model, fit


def test_resume_keeps_the_early_stopping_state(tmp_path, monkeypatch):
    """Killed after epoch 2 (best epoch 1, one bad epoch): the resumed run stops after epoch 4
    like the uninterrupted one and ends with epoch 1's weights."""
    hist_a = []
    straight, fit_a = _scripted_run(tmp_path / "a", hist_a)
    assert (fit_a.best_epoch, fit_a.stopped, len(hist_a)) == (1, True, 5)
    real = CheckpointStore.save

    def save_then_kill(self, phase, epoch, state):
        path = real(self, phase, epoch, state)
        if epoch == 2:
            raise KeyboardInterrupt("simulated kill")
        return path

    monkeypatch.setattr(checkpoints.CheckpointStore, "save", save_then_kill)
    with pytest.raises(KeyboardInterrupt):
        _scripted_run(tmp_path / "b", [])
    monkeypatch.undo()
    hist_b = []
    resumed, fit_b = _scripted_run(tmp_path / "b", hist_b)
    assert hist_b == hist_a and (fit_b.best_epoch, fit_b.best_val, fit_b.stopped) == (1, 1.0, True)
    for n, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[n]), n
    # a finished (early-stopped) run started again trains no further epoch
    again, fit_c = _scripted_run(tmp_path / "b", [])
    assert fit_c.best_epoch == 1
    assert all(torch.equal(v, again.state_dict()[n]) for n, v in straight.state_dict().items())
