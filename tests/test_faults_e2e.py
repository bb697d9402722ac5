"""Faults: a SIGKILL in the middle of ONE pretraining job, then the same Snakemake command again,
resumes from the last checkpoint and writes the same weights as an uninterrupted run. Both runs
work on private copies of the base run and rerun that one job only."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from e2e_support import copy_run, snakemake

pytestmark = pytest.mark.e2e

TARGET = "results/models/metatrl/full/in-porto/seed0/model.pt"
OVERRIDE = "models:\n  metatrl:\n    pretrain:\n      target_epochs: 4\n"


def test_sigkill_mid_pretraining_resumes_to_identical_weights(repo, workflow_run, tmp_path):
    runs = {}
    for name in ("straight", "killed"):
        work = copy_run(workflow_run, tmp_path / name)  # copies keep mtimes: preprocessing stays done
        (work / "override.yaml").write_text(OVERRIDE)
        runs[name] = work

    def args(work):
        return [TARGET, "--configfile", str(work / "config.yaml"), str(work / "override.yaml")]

    proc = snakemake(repo, runs["straight"], *args(runs["straight"]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rule pretrain" in proc.stdout + proc.stderr and "rule evaluate" not in proc.stdout + proc.stderr

    work = runs["killed"]
    ckpt = work / "results/models/metatrl/full/in-porto/seed0/checkpoints/target-epoch-001.pt"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(work),
           "--cores", "2", *args(work)]
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not ckpt.exists():
        assert child.poll() is None, "snakemake ended before the second pretraining epoch was checkpointed"
        assert time.time() < deadline, "no checkpoint after 10 minutes"
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    # Snakemake removed the pretraining job's outputs before it started; nothing half-written remains
    assert not (work / TARGET).exists()

    proc = snakemake(repo, work, *args(work), "--unlock")  # the killed Snakemake left its lock
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = snakemake(repo, work, *args(work), "--rerun-incomplete")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (work / "logs/models/metatrl/full/in-porto/seed0/pretrain.log").read_text()
    assert "resuming after epoch" in log
    a = torch.load(work / TARGET, weights_only=True)["state_dict"]
    b = torch.load(runs["straight"] / TARGET, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
