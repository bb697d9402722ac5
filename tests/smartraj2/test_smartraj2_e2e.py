"""End to end: SMARTraj2 on the slice of the real Porto and San Francisco data (the base run's
500 / 2,000 trips), tiny sizes, one epoch: every task it serves (TTE, destination road = dp with
Acc@k, road label, destination grid; cla_calltype and cla_taxi go through the same road path as
TTE) on Porto, every ablation of Table 2 (on San Francisco, two tasks), the cross-city, in-city
and untrained settings, the transfer matrix, and the summary's plan. Reuses the session base run
(its data stages), on a private copy."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from e2e_support import copy_run, snakemake
from smartraj2_support import smartraj2_config

pytestmark = pytest.mark.e2e

VARIANTS = {"full", "no-diff-loss", "no-gating", "no-grid", "no-gps", "no-route", "no-invariant-specific",
            "no-gating-specific"}
METRICS = {"tte": {"MAE", "MAPE", "RMSE"}, "dp": {"Micro-F1", "Macro-F1", "Recall@5", "Acc@1", "Acc@5"},
           "road_label": {"Micro-F1", "Macro-F1"}, "dest_grid": {"Acc@1", "Acc@5"}}


def test_smartraj2_on_the_slice(workflow_run, repo, data_root, tmp_path):
    work = copy_run(workflow_run, tmp_path / "run")
    cfg = smartraj2_config(repo, data_root)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    targets = ["results/porto/smartraj2.csv", "results/sanfrancisco/smartraj2.csv",
               "results/sanfrancisco/smartraj2-ablations.csv", "results/transfer/smartraj2.csv"]
    proc = snakemake(repo, work, *targets, "--configfile", str(work / "config.yaml"), timeout=1500)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted((work / "logs").rglob("*.log"))
                         if "smartraj2" in str(p))
        pytest.fail(f"snakemake failed:\n{proc.stderr[-3000:]}\n{logs}")

    porto = pd.read_csv(work / "results/porto/smartraj2.csv")
    assert set(porto["setting"]) == {"cross-city"} and set(porto["sources"]) == {"sanfrancisco"}
    for task, metrics in METRICS.items():
        assert set(porto.loc[porto["task"] == task, "metric"]) == metrics, task
    assert all(math.isfinite(v) for v in porto["value"]) and (porto["n_test"] > 0).all()
    acc = porto[porto["metric"].str.startswith("Acc@")].set_index(["task", "metric"])["value"]
    assert ((acc >= 0) & (acc <= 1)).all() and (acc.xs("Acc@5", level=1) >= acc.xs("Acc@1", level=1)).all()
    sf = pd.read_csv(work / "results/sanfrancisco/smartraj2.csv")
    assert set(sf["task"]) == {"road_label", "dest_grid"} and set(sf["sources"]) == {"porto"}

    ablations = pd.read_csv(work / "results/sanfrancisco/smartraj2-ablations.csv")
    assert set(ablations["variant"]) == VARIANTS
    no_route = ablations[(ablations["variant"] == "no-route") & (ablations["task"] == "road_label")]
    assert no_route["value"].isna().all() and (no_route["n_train"] == 0).all()  # Table 2's ✕
    rest = ablations[~((ablations["variant"] == "no-route") & (ablations["task"] == "road_label"))]
    assert rest["value"].map(math.isfinite).all()

    # the summary reads every SMARTraj2 setting (plan only: the summary itself is the base run's)
    plan = snakemake(repo, work, "results/porto/summary.csv", "-n", "--forceall",
                     "--configfile", str(work / "config.yaml"))
    assert plan.returncode == 0, plan.stderr[-2000:]
    for exp in ("cross-city_from-sanfrancisco", "in-city", "untrained"):
        assert f"results/porto/eval/smartraj2/full/{exp}/seed0/dest_grid.csv" in plan.stdout, exp
    transfer = pd.read_csv(work / "results/transfer/smartraj2.csv")
    assert {"porto", "sanfrancisco"} <= set(transfer["city"])

    # the views' filter accounting reaches the task QC, and kept + rejected = in
    qc = pd.read_csv(work / "results/porto/eval/smartraj2/full/cross-city_from-sanfrancisco/seed0/dest_grid_qc.csv")
    for stage, part in qc.groupby("stage"):
        counts = dict(zip(part["outcome"], part["count"]))
        assert counts["in"] == counts["kept"] + sum(v for k, v in counts.items() if k.startswith("rejected:")), stage
    log = (work / "logs/models/smartraj2/full/sanfrancisco-to-porto/seed0/pretrain.log").read_text()
    assert "porto views: in=" in log and "sanfrancisco views: in=" in log
