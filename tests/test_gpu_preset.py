"""The GPU preset (config/presets/paper-gpu.yaml): every model job asks for a GPU, every compared
road model has the same size and fine-tuning budget, and the training options reach the jobs.
No GPU here: checked on the merged config and with a dry run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ROAD_MODELS = ("metatrl", "start", "transformer-mlm", "node2vec")


def merged():
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    preset = yaml.safe_load((REPO / "config/presets/paper-gpu.yaml").read_text())

    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(dict(a.get(k) or {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a
    return merge(base, preset)


def test_preset_requests_gpus_and_scales_every_road_model_alike():
    cfg = merged()
    assert cfg["device"] == "cuda" and cfg["training"]["amp"] is True and cfg["training"]["loader_workers"] > 0
    sizes = {m: tuple(cfg["models"][m]["hparams"][k] for k in ("d_model", "layers", "heads", "ffn_dim", "dropout"))
             for m in ROAD_MODELS}
    assert len(set(sizes.values())) == 1, sizes
    budgets = {m: tuple(sorted(cfg["models"][m]["finetune"].items())) for m in ROAD_MODELS}
    assert len(set(budgets.values())) == 1, budgets


def test_preset_dry_run_gives_model_jobs_a_gpu_and_the_training_options(data_root, tmp_path):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(REPO / "config.yaml"), str(REPO / "config/presets/paper-gpu.yaml"),
           "--config", f"data_root={data_root}", "-n", "-p", "--cores", "2", "results/porto/start.csv"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    blocks = proc.stdout.split("\nrule ")
    model_jobs = [b for b in blocks if b.split(":")[0] == "pretrain" or b.startswith("evaluate_")]
    assert model_jobs and all("gpu=1" in b for b in model_jobs)
    assert all("gpu=1" not in b for b in blocks if b.split(":")[0] in ("ingest_trajectories", "map_match_chunk"))
