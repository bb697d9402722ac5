"""Snakemake's report of the slice run renders in headless Chromium with every figure and table
and no script error. Needs Debian's chromium (`apt-get install chromium`); `.ci/run` installs it
and sets TRAJZOO_REQUIRE_CHROMIUM=1, so in CI a missing browser fails instead of skipping."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from e2e_support import copy_run, snakemake

pytestmark = pytest.mark.report

FIGURES = ("network.png", "map_matching.png", "losses.png", "metrics.png", "transfertraj.png", "metatrl.png",
           "routes.html", "gps_road_distances.png", "embeddings.png", "tte.png")
TABLES = ("summary.md", "qc.md")


def chromium_or_skip() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("TRAJZOO_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is required here but not installed")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return path


def test_report_renders_with_every_figure_and_table(repo, workflow_run, tmp_path):
    browser = chromium_or_skip()
    for city in ("porto", "sanfrancisco"):  # the base run built the default target: tables and figures
        for name in ("network.png", "map_matching.png"):
            assert (workflow_run / f"results/{city}/figures/{name}").stat().st_size > 10_000
    work = copy_run(workflow_run, tmp_path / "run")
    html = work / "report.html"
    proc = snakemake(repo, work, "--report", str(html))
    assert proc.returncode == 0, proc.stderr[-3000:]
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=15000", "--dump-dom", html.as_uri()]
    page = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    dom = page.stdout
    assert len(dom) > 1000, page.stderr[-2000:]
    errors = [line for line in page.stderr.splitlines() if "Uncaught" in line or "SyntaxError" in line]
    assert not errors, errors
    for name in FIGURES + TABLES:
        assert name in dom, f"{name} missing from the rendered report"
    # the interactive route map on its own, in the same browser: its script runs without error
    # and draws the road network, one route and its GPS fixes
    routes = workflow_run / "results/porto/figures/routes.html"
    page = subprocess.run([*cmd[:-2], "--dump-dom", routes.as_uri()], capture_output=True, text=True, timeout=180)
    assert not [line for line in page.stderr.splitlines() if "Uncaught" in line], page.stderr[-2000:]
    assert page.stdout.count("<circle") > 5 and 'class="route"' in page.stdout and 'r="' in page.stdout
