"""Data-parallel TrajGANR pretraining through the launcher (trajzoo.training.launch): 2 CPU
processes (gloo), each encoding the trajectories of half of every global batch of 6 samples, end
with the same weights, queue and history as 1 process: positives and in-batch negatives come from
the whole global batch and every process enqueues the whole global batch's MoCo keys."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trajzoo.training import launch
from trajzoo.training.loop import RunContext
from trajzoo_trajganr.model import TrajGANR
from trajzoo_trajganr.parameters import PretrainConfig, TrajGANRConfig
from trajzoo_trajganr.training import pretrain

from toy import inputs_of, location_view, row
from ddp_support import run_one_and_two, write_rank0

SMALL = dict(d_model=8, heads=2, agg_heads=2, ffn_dim=8, layers=1, window=8, queue_size=64, random_locations=2)


def _rows():
    """Eight trips along y ~ 500 (passing locations 0 and 1) and four along x ~ 500 (passing 3
    and 1), all train; 17 or 9 fixes (windows of 8: down-sampled); one off every location (test)."""
    xs = np.linspace(100, 900, 17)
    rows = {f"h{i}": row(f"h{i}", xs[:: 1 + i % 2], np.full(len(xs[:: 1 + i % 2]), 496.0 + i), dt=10 + 2 * i)
            for i in range(8)}
    rows.update({f"v{i}": row(f"v{i}", np.full(17, 497.0 + 2 * i), np.linspace(50, 950, 17), dt=12 + i)
                 for i in range(4)})
    rows["z"] = row("z", xs, np.full(17, 900.0))
    return rows, {t: ("test" if t == "z" else "train") for t in rows}


def _pretrain(out: str) -> None:
    torch.set_num_threads(1)
    rows, splits = _rows()
    inputs = inputs_of(location_view(rows, splits), rows, splits)
    torch.manual_seed(0)
    model = TrajGANR(TrajGANRConfig(**SMALL))
    seen: list[int] = []
    localized = model.trajectory.localized

    def recording(batch, *args):
        seen.append(int(batch.xy.shape[0]))
        return localized(batch, *args)

    model.trajectory.localized = recording
    history = pretrain(model, inputs, PretrainConfig(epochs=2, batch_size=6), RunContext(torch.device("cpu"), 0,
                                                                                        Path(out) / "ckpt"))
    rank = launch.distributed.world()[0]
    (Path(out) / f"seen-rank{rank}.json").write_text(json.dumps(seen))
    write_rank0(model, history, out)


def test_pretraining_two_processes_match_one_process(tmp_path):
    one, two = run_one_and_two(_pretrain, tmp_path)
    a = torch.load(one / "state.pt", weights_only=True)
    b = torch.load(two / "state.pt", weights_only=True)
    assert a.keys() == b.keys()
    d = SMALL["d_model"]
    for name in a:
        x, y = a[name], b[name]
        if name.endswith("self_attn.in_proj_bias"):  # key biases: zero gradient, Adam-rescaled noise
            x, y = torch.cat([x[:d], x[2 * d:]]), torch.cat([y[:d], y[2 * d:]])
        torch.testing.assert_close(y.float(), x.float(), rtol=1e-5, atol=1e-5, msg=name)  # queue buffers too
    ha, hb = json.loads((one / "history.json").read_text()), json.loads((two / "history.json").read_text())
    assert len(ha) == len(hb) == 2
    for x, y in zip(ha, hb):
        for k in ("train_loss", "L_TL"):
            assert y[k] == pytest.approx(x[k], rel=1e-5), k
    torch.manual_seed(0)
    init = TrajGANR(TrajGANRConfig(**SMALL)).state_dict()
    assert not torch.allclose(init["location.mlp.fc1.weight"], a["location.mlp.fc1.weight"])  # trained
    assert int(a["queue.count"]) > 0
    # each process encoded the trajectories of its half of every global batch only
    full = json.loads((one / "seen-rank0.json").read_text())
    halves = [json.loads((two / f"seen-rank{r}.json").read_text()) for r in (0, 1)]
    assert [x + y for x, y in zip(*halves)] == full and all(abs(x - y) <= 1 for x, y in zip(*halves))
