"""Data-parallel pretraining through the launcher (trajzoo.training.launch): transformer-mlm
pretrained on the toy city by 2 CPU processes (gloo), each with half of every global batch of 6,
saves the same weights and history as 1 process with batches of 6; rank 0 alone writes the
outputs, the log and the checkpoints."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch

from baselines_toy import build_batch, toy_city
from trajzoo.registry import get_model
from trajzoo.runlog import setup_rule_logging
from trajzoo.training import launch
from trajzoo.training.loop import RunContext, load_checkpoint, save_encoder

# dropout 0: dropout draws from the global torch RNG per row of the local batch, the one random
# draw that data parallelism does not reproduce (masks and shuffles it does); mask ratio 0.4: 2 or 3
# masked positions per trip, so the shares of a global batch differ in masked positions
HPARAMS = {"d_model": 16, "layers": 1, "heads": 2, "ffn_dim": 32, "dropout": 0.0, "mask_ratio": 0.4}
GLOBAL_BATCH = 6  # 12 train trips: 2 steps per epoch; 3 + 3 rows per process with 2 processes
SCHEDULE = {"epochs": 2, "batch_size": GLOBAL_BATCH, "lr": 3e-3}


# START: the same sizes, one GAT layer, two TAT-Enc layers (with one, the time-interval network
# gets no gradient: [CLS] and masked queries have no time, so their biases are one constant); its span masks and both contrastive views are drawn for
# the whole global batch and its NT-Xent sees the negatives of both processes (all-gather)
START_HPARAMS = {"d_model": 16, "gat_layers": 1, "gat_heads": 2, "layers": 2, "heads": 2, "ffn_dim": 32,
                 "dropout": 0.0, "interval_hidden": 4, "mask_ratio": 0.4, "temperature": 0.5}
MODEL_HPARAMS = {"transformer-mlm": HPARAMS, "start": START_HPARAMS}


def _pretrain(out: str, model: str = "transformer-mlm") -> None:
    """Every process: pretrain; rank 0: write the log, the encoder and the history (a rule
    script's main); every process also notes that it ran (outside the outputs)."""
    hparams = MODEL_HPARAMS[model]
    out = Path(out)
    log = setup_rule_logging(out / "pretrain.log")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rank, world = launch.distributed.world()
    (out / "ran").mkdir(exist_ok=True)
    (out / "ran" / f"rank{rank}").write_text(json.dumps({"world": world, "env_rank": os.environ.get("RANK")}))
    ctx = RunContext(torch.device("cpu"), 0, out / "checkpoints", log)
    city = toy_city()
    encoder = get_model(model).pretrain_road(city, [], {"hparams": hparams, "pretrain": SCHEDULE}, ctx)
    if not launch.is_writer():
        return
    save_encoder(out / "model.pt", encoder, model, hparams, city.graph)
    (out / "history.json").write_text(json.dumps(ctx.history))


@pytest.fixture
def keep_descriptors():
    """setup_rule_logging points descriptors 1 and 2 and the root logger at the log file; the
    one-process run does that in the test process: restore them afterwards."""
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    for fd, copy in saved.items():
        os.dup2(copy, fd)
        os.close(copy)
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


def _outputs(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.parent.name != "ran"}


def test_two_processes_save_the_weights_of_one_process_with_the_same_global_batch(tmp_path, keep_descriptors):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    launch.run(_pretrain, str(one), processes=1)
    launch.run(_pretrain, str(two), processes=2, threads=1)

    assert sorted(p.name for p in (two / "ran").iterdir()) == ["rank0", "rank1"]
    assert all(json.loads(p.read_text())["world"] == 2 for p in (two / "ran").iterdir())
    assert json.loads((one / "ran" / "rank0").read_text())["world"] == 1

    a, b = load_checkpoint(one / "model.pt")["state_dict"], load_checkpoint(two / "model.pt")["state_dict"]
    assert a.keys() == b.keys()
    # the key biases b_k (rows d:2d) are compared through the outputs only (_zero_gradient_rows)
    _assert_same_training("transformer-mlm", HPARAMS, a, b, one, two, lambda enc, batch, g: enc(batch, g))

    # rank 0 alone wrote: the same files as one process, one log with one line per epoch
    assert _outputs(two) == _outputs(one) == {
        "pretrain.log", "model.pt", "history.json", "checkpoints/pretrain-epoch-000.pt",
        "checkpoints/pretrain-epoch-001.pt"}
    assert (two / "pretrain.log").read_text().count("pretrain epoch 1:") == 1


def test_processes_resource_and_torchrun_detection(monkeypatch):
    class Resources:  # attribute access, as Snakemake's Resources
        processes = 2

    assert launch.processes_of(None) == 1
    assert launch.processes_of({}) == 1
    assert launch.processes_of({"processes": 3}) == 3
    assert launch.processes_of(Resources()) == 2
    for bad in (0, -1, "two", 1.5):
        with pytest.raises(ValueError, match="resource processes must be an integer >= 1"):
            launch.processes_of({"processes": bad})
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert not launch.under_torchrun() and launch.is_writer()
    assert launch.run(lambda x: x + 1, 1) == 2  # one process: a plain call
    monkeypatch.setenv("RANK", "1")
    assert not launch.is_writer()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launch.under_torchrun()


TORCHRUN_SCRIPT = '''
import os, sys, torch
from trajzoo.training import distributed, launch

def main(out):
    rank, world = distributed.world()
    total = torch.tensor([float(rank + 1)])
    torch.distributed.all_reduce(total)  # the group torchrun described is joined
    if launch.is_writer():
        open(out, "w").write(f"{world} {float(total)}")

if __name__ == "__main__":
    launch.run(main, sys.argv[1], processes=1)  # `processes` is ignored under torchrun
'''


def test_a_job_under_torchrun_joins_its_processes(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "job.py"
    script.write_text(TORCHRUN_SCRIPT)
    out = tmp_path / "out.txt"
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo"}
    env.pop("WORLD_SIZE", None)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-addr", "127.0.0.1", "--master-port", str(launch.free_port()),
                           str(script), str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_text() == "2 3.0"  # world size 2, ranks 0 + 1 summed (1 + 2); rank 0 wrote


def _assert_same_training(model: str, hparams: dict, a: dict, b: dict, one, two, run) -> None:
    """1 process (state ``a``, run folder ``one``) and 2 processes (``b``, ``two``) trained the
    same: weights (without :func:`_zero_gradient_rows`) and the encoders' outputs ``run(encoder,
    batch, graph)`` on a toy batch within 1e-5, the same history losses, and weights that moved."""
    d = hparams["d_model"]
    for name in a:
        x, y = _zero_gradient_rows(name, a[name], d), _zero_gradient_rows(name, b[name], d)
        torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-5, msg=name)
    encoders = []
    for state in (a, b):
        encoder = get_model(model).build_encoder(toy_city().graph, hparams).eval()
        encoder.load_state_dict(state)
        encoders.append(encoder)
    batch = build_batch([8, 5, 3, 6])
    with torch.no_grad():
        torch.testing.assert_close(run(encoders[1], batch, toy_city().graph), run(encoders[0], batch, toy_city().graph),
                                   rtol=1e-5, atol=1e-5)
    ha, hb = json.loads((one / "history.json").read_text()), json.loads((two / "history.json").read_text())
    assert [(h["phase"], h["epoch"]) for h in hb] == [(h["phase"], h["epoch"]) for h in ha] == \
        [("pretrain:toy", 0), ("pretrain:toy", 1)]
    for x, y in zip(ha, hb):
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=1e-5)
        assert y["val_loss"] == pytest.approx(x["val_loss"], rel=1e-5)
    # guard: the weights moved, so agreement is not trivial
    torch.manual_seed(0)
    init = get_model(model).build_encoder(toy_city().graph, hparams).state_dict()
    assert any(not torch.allclose(init[n], a[n]) for n in a)


def _zero_gradient_rows(name: str, x: torch.Tensor, d: int) -> torch.Tensor:
    """``x`` without the rows whose gradient is zero in exact arithmetic (softmax is invariant to
    a bias that is the same for every key of a query), so that their float gradients are
    rounding noise, which Adam rescales to steps of ~lr: the key biases b_k of a fused q, k, v
    projection (rows d:2d)."""
    if name.endswith("self_attn.in_proj_bias") or name.endswith("attention.qkv.bias"):
        return torch.cat([x[:d], x[2 * d:]])
    return x


def test_start_two_processes_match_one_process_with_negatives_from_both(tmp_path, keep_descriptors):
    """START with 2 processes x 3 rows = 1 process x 6 rows: its span masks and views are drawn
    for the global batch and its contrastive term gathers both processes' representations (with
    only a share's negatives, or with the shares' gradients averaged rather than summed, the
    weights differ by ~1e-3)."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    launch.run(_pretrain, str(one), "start", processes=1)
    launch.run(_pretrain, str(two), "start", processes=2, threads=1)

    a, b = load_checkpoint(one / "model.pt")["state_dict"], load_checkpoint(two / "model.pt")["state_dict"]
    assert a.keys() == b.keys()
    _assert_same_training("start", START_HPARAMS, a, b, one, two, lambda enc, batch, g: enc.embed(batch, g))
