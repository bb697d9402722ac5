"""Snakemake conventions: snakefmt-formatted rule files, `snakemake --lint` clean, tiny table and
plot rules local, download rules retried, a workflow-catalog file. (One fine-tuning job per run:
tests/test_config.py and tests/core/test_evaluation_run.py.)"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from test_env_pins import rule_blocks

REPO = Path(__file__).resolve().parents[1]
SNAKEFILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
LOCAL_RULES = {"model_table", "summary", "ablation_table", "transfer_table", "qc_report", "plot_network",
               "plot_map_matching", "plot_losses", "plot_metrics", "interpolation_baseline", "model_bundle",
               "plot_ablations", "plot_embeddings", "plot_gps_distances", "plot_route_map", "plot_tte",
               "segments_geoparquet"}


def test_snakefmt_check_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *map(str, SNAKEFILES)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_lint_is_clean(data_root, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(REPO / "Snakefile"),
                           "--configfile", str(REPO / "config.yaml"), "--config", f"data_root={data_root}"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_tiny_rules_are_local_and_downloads_retry():
    blocks = rule_blocks()
    local = {name for name, body in blocks.items() if re.search(r"^\s*localrule:\s*True", body, flags=re.M)}
    assert local == LOCAL_RULES, local ^ LOCAL_RULES
    for name in ("download_osm", "download_trajectories"):
        assert re.search(r"^\s*retries:\s*[1-9]", blocks[name], flags=re.M), name


def test_workflow_catalog_file():
    meta = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    assert meta["usage"]["software-stack-deployment"]["conda"] is True
    assert "--cores" in meta["usage"]["mandatory-flags"]["flags"]
