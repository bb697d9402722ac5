"""Faults: a SIGKILL in the middle of pretraining, then the same Snakemake command again, resumes
from the last checkpoint and reaches the same table as an uninterrupted run."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from e2e_support import snakemake

TARGET = "results/porto/metatrl-target-only.csv"
OVERRIDE = "models:\n  metatrl:\n    pretrain:\n      target_epochs: 6\n"


def test_sigkill_mid_pretraining_resumes_to_identical_results(repo, workflow_run, tmp_path):
    runs = {}
    for name in ("straight", "killed"):
        work = tmp_path / name
        shutil.copytree(workflow_run, work, symlinks=True)  # copy2 keeps mtimes: preprocessing stays done
        (work / "override.yaml").write_text(OVERRIDE)
        runs[name] = work
    def args(work):
        return [TARGET, "--configfile", str(work / "config.yaml"), str(work / "override.yaml")]

    proc = snakemake(repo, runs["straight"], *args(runs["straight"]))
    assert proc.returncode == 0, proc.stderr[-3000:]

    work = runs["killed"]
    ckpt = work / "results/porto/models/metatrl-target-only/seed0/checkpoints/target-epoch-001.pt"
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
    assert not (work / "results/porto/models/metatrl-target-only/seed0/encoder.pt").exists()

    proc = snakemake(repo, work, *args(work), "--unlock")  # the killed Snakemake left its lock
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = snakemake(repo, work, *args(work), "--rerun-incomplete")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (work / "logs/porto/pretrain/metatrl-target-only/seed0.log").read_text()
    assert "resuming from target epoch" in log
    assert (work / TARGET).read_bytes() == (runs["straight"] / TARGET).read_bytes()
