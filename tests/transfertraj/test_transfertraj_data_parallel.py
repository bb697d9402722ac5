"""Data parallelism of TransferTraj through the launcher (trajzoo.training.launch): 2 CPU
processes (gloo), each with half of every global batch of 6, end with the same weights and
history as 1 process with batches of 6, in point-task fine-tuning (TP, with SC-MoE's
load-balancing term: its routing counts are all-reduced) and in pretraining (masks and context
dropout drawn for the global batch, two cities interleaved)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from trajzoo.tasks.tp import TrajectoryPrediction
from trajzoo.training import launch
from trajzoo.training.loop import RunContext
from trajzoo.training.point_tasks import PointFineTuneConfig, finetune_point_task
from trajzoo_transfertraj.model import TransferTraj
from trajzoo_transfertraj.parameters import TransferTrajConfig
from trajzoo_transfertraj.training import PretrainConfig, pretrain

from transfertraj_toy import batch_to_rows, build_batch
from ddp_support import run_one_and_two, write_rank0

# dropout 0 (the default): it draws from the global torch RNG per element of the local share, the
# one draw data parallelism does not reproduce (statistically equivalent); masks, context dropout
# and the gate noise (gate_noise 1, the default) it does
CFG = TransferTrajConfig(d_model=16, heads=2, ffn_dim=16, layers=2, experts=4, top_k=2, max_len=32,
                         gate_noise=1.0, dropout=0.0, load_balance_weight=0.1)
GLOBAL_BATCH = 6


def _rows(city: str, lengths, seed: int, **kw) -> list[dict]:
    return batch_to_rows(build_batch(lengths, seed=seed, city=city, **kw))


def _record_training_batches(model: TransferTraj, out: Path) -> None:
    """Note the size of every batch the model trains on, per process (``out/seen-rank<r>.json``):
    each process must train on its share only."""
    rank = launch.distributed.world()[0]
    seen: list[int] = []
    predict = model.predict

    def recording(batch):
        if model.training:
            seen.append(batch.batch_size)
            (out / f"seen-rank{rank}.json").write_text(json.dumps(seen))
        return predict(batch)

    model.predict = recording


def _finetune(out: str) -> None:
    """Every process: fine-tune TP on 14 toy trips (global batches 6, 6, 2: shares 3 + 3, 1 + 1);
    rank 0 writes the weights and the history."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = TransferTraj(CFG)
    _record_training_batches(model, Path(out))
    train_rows = _rows("a", [12] * 6 + [9] * 5 + [7] * 3, seed=3)
    val_rows = _rows("a", [10] * 4, seed=4)
    ctx = RunContext(torch.device("cpu"), 0, Path(out) / "checkpoints", logging.getLogger("ddp-test"))
    cfg = PointFineTuneConfig(epochs=2, batch_size=GLOBAL_BATCH, lr=3e-3, patience=5, max_len=32)
    rows = finetune_point_task(model, TrajectoryPrediction(), train_rows, val_rows, cfg, ctx, "a")
    write_rank0(model, rows, out)


def _compare(one: Path, two: Path, keys=("train_loss", "val_loss")) -> tuple[dict, dict]:
    a = torch.load(one / "state.pt", weights_only=True)
    b = torch.load(two / "state.pt", weights_only=True)
    assert a.keys() == b.keys()
    d = CFG.d_model
    for name in a:
        x, y = a[name], b[name]
        if name == "mixing.qkv.bias":
            # the key bias b_k (rows d:2d) of modality mixing's attention has a zero gradient in
            # exact arithmetic (softmax is invariant to q.b_k, the same for every key of a
            # query), so its float gradients are rounding noise that Adam rescales to steps of ~lr
            x, y = torch.cat([x[:d], x[2 * d:]]), torch.cat([y[:d], y[2 * d:]])
        torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-5, msg=name)
    ha, hb = json.loads((one / "history.json").read_text()), json.loads((two / "history.json").read_text())
    assert [h["epoch"] for h in hb] == [h["epoch"] for h in ha] and len(ha) == 2
    for x, y in zip(ha, hb):
        for k in keys:
            assert y[k] == pytest.approx(x[k], rel=1e-5), k
    torch.manual_seed(0)
    init = TransferTraj(CFG).state_dict()
    assert any(not torch.allclose(init[n].float(), a[n].float()) for n in a)  # the weights moved
    return ha, hb


def test_point_task_finetuning_two_processes_match_one_process(tmp_path):
    one, two = run_one_and_two(_finetune, tmp_path)
    _compare(one, two)
    assert sorted(json.loads((one / "seen-rank0.json").read_text())) == sorted([6, 6, 2] * 2)
    for rank in (0, 1):  # each process trained on its half of every global batch only
        assert sorted(json.loads((two / f"seen-rank{rank}.json").read_text())) == sorted([3, 3, 1] * 2)


def _pretrain(out: str) -> None:
    """Every process: pretrain on two toy cities (a: 10 trips, global batches 6 + 4; b: 8 trips,
    6 + 2; interleaved), context dropout on; rank 0 writes the weights and the history."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = TransferTraj(CFG)
    _record_training_batches(model, Path(out))
    rows = {"a": _rows("a", [14] * 4 + [9] * 6, seed=5, has_poi=False), "b": _rows("b", [11] * 5 + [6] * 3, seed=6)}
    val = {"a": _rows("a", [10] * 3, seed=7, has_poi=False)}
    ctx = RunContext(torch.device("cpu"), 0, Path(out) / "checkpoints", logging.getLogger("ddp-test"))
    history = pretrain(model, rows, PretrainConfig(epochs=2, batch_size=GLOBAL_BATCH, lr=3e-3), ctx, val)
    write_rank0(model, history, out)


def test_pretraining_two_processes_match_one_process(tmp_path):
    one, two = run_one_and_two(_pretrain, tmp_path)
    ha, hb = _compare(one, two, keys=("train_loss", "val_loss", "xy_mse_km2", "t_mse_min2", "load_balance"))
    assert [h["expert_usage"] for h in hb] == [h["expert_usage"] for h in ha]  # every process's routing
    assert [h["steps"] for h in hb] == [h["steps"] for h in ha] == [4, 4]
    assert sorted(json.loads((one / "seen-rank0.json").read_text())) == sorted([6, 4, 6, 2] * 2)
    for rank in (0, 1):  # each process trained on its half of every global batch only
        assert sorted(json.loads((two / f"seen-rank{rank}.json").read_text())) == sorted([3, 2, 3, 1] * 2)
