"""Core point-task loop (trajzoo.training.point_tasks) with TransferTraj: fine-tune, evaluate, resume."""
import logging

import pytest
import torch

from trajzoo.tasks.od_tte import ODTravelTime
from trajzoo.tasks.tp import TrajectoryPrediction
from trajzoo.training.loop import RunContext
from trajzoo.training.point_tasks import PointFineTuneConfig, evaluate_point_task, finetune_point_task, task_loss
from trajzoo_transfertraj.model import TransferTraj
from trajzoo_transfertraj.parameters import TransferTrajConfig

from transfertraj_toy import batch_to_rows, build_batch

CFG = TransferTrajConfig(d_model=16, heads=2, ffn_dim=16, max_len=32)
FT = PointFineTuneConfig(epochs=3, lr=3e-3, batch_size=8, patience=2, max_len=32)


def _rows(seed, n):
    return batch_to_rows(build_batch([20] * n, seed=seed, city="toy"))


def _ctx(path, seed=0):
    return RunContext(device=torch.device("cpu"), seed=seed, checkpoint_dir=path, logger=logging.getLogger("t"))


def _model():
    torch.manual_seed(0)
    return TransferTraj(CFG)


def test_finetune_and_evaluate_tp(tmp_path):
    task = TrajectoryPrediction()
    train, val, test = _rows(1, 48), _rows(2, 8), _rows(3, 8)
    model = _model()
    before = evaluate_point_task(model, task, test, 8, "cpu", "toy", max_len=32)
    before_val = task_loss(model, task, val, 8, "cpu", "toy", 32)
    cfg = PointFineTuneConfig(epochs=6, lr=5e-3, batch_size=8, patience=3, max_len=32)
    hist = finetune_point_task(model, task, train, val, cfg, _ctx(tmp_path), "toy")
    assert [h["phase"] for h in hist] == ["finetune:tp"] * len(hist) and 4 <= len(hist) <= 6
    best = min(hist, key=lambda h: h["val_loss"])
    assert hist[-1]["best_epoch"] == best["epoch"]
    # the model holds the best epoch's weights
    assert task_loss(model, task, val, 8, "cpu", "toy", 32) == pytest.approx(best["val_loss"], rel=1e-5)
    assert best["val_loss"] < before_val
    after = evaluate_point_task(model, task, test, 8, "cpu", "toy", max_len=32)
    assert set(after) == {"MAE", "RMSE", "n", "n_predictions"}
    assert after["n"] == 8 and after["n_predictions"] == 8 * 5
    assert after["RMSE"] >= after["MAE"] > 0
    assert after["MAE"] < 0.8 * before["MAE"]  # held-out trips: it learned to extrapolate


def test_od_tte_finetune_reduces_error(tmp_path):
    task = ODTravelTime()
    train, val = _rows(4, 32), _rows(5, 8)
    model = _model()
    before = evaluate_point_task(model, task, val, 8, "cpu", "toy", max_len=32)
    finetune_point_task(model, task, train, val, PointFineTuneConfig(epochs=4, lr=1e-2, batch_size=8, patience=4,
                                                                     max_len=32), _ctx(tmp_path), "toy")
    after = evaluate_point_task(model, task, val, 8, "cpu", "toy", max_len=32)
    assert set(after) >= {"MAE", "MAPE", "RMSE"} and after["n_predictions"] == 8
    assert after["MAE"] < before["MAE"]


def test_zero_epochs_and_empty_inputs(tmp_path):
    task = TrajectoryPrediction()
    model = _model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    cfg0 = PointFineTuneConfig(epochs=0)
    assert finetune_point_task(model, task, [], [], cfg0, _ctx(tmp_path), "toy") == []
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    with pytest.raises(ValueError, match="no train"):
        finetune_point_task(model, task, [], _rows(2, 4), FT, _ctx(tmp_path), "toy")
    with pytest.raises(ValueError, match="no trajectory"):
        evaluate_point_task(model, task, [], 8, "cpu", "toy")
    with pytest.raises(ValueError, match="unknown"):
        PointFineTuneConfig.from_dict({"epoch": 3})


def test_killed_finetuning_resumes_to_the_same_weights(tmp_path, monkeypatch):
    task = TrajectoryPrediction()
    train, val = _rows(1, 16), _rows(2, 8)
    cfg = PointFineTuneConfig(epochs=3, lr=3e-3, batch_size=8, patience=3, max_len=32)
    full = _model()
    finetune_point_task(full, task, train, val, cfg, _ctx(tmp_path / "full"), "toy")

    part = _model()
    calls = {"n": 0}
    real = TrajectoryPrediction.loss

    def dying(self, query, pred):
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == 4:  # second step of epoch 1 (2 steps per epoch)
                raise KeyboardInterrupt
        return real(self, query, pred)

    monkeypatch.setattr(TrajectoryPrediction, "loss", dying)
    with pytest.raises(KeyboardInterrupt):
        finetune_point_task(part, task, train, val, cfg, _ctx(tmp_path / "part"), "toy")
    monkeypatch.setattr(TrajectoryPrediction, "loss", real)
    assert sorted(p.name for p in (tmp_path / "part").iterdir()) == ["finetune_tp-epoch-000.pt"]
    torch.manual_seed(99)  # global RNG state comes back from the checkpoint
    resumed = _model()
    hist = finetune_point_task(resumed, task, train, val, cfg, _ctx(tmp_path / "part"), "toy")
    assert [h["epoch"] for h in hist] == [0, 1, 2]
    for k, v in full.state_dict().items():
        assert torch.allclose(v, resumed.state_dict()[k], atol=1e-6), k
