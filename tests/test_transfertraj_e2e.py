"""End to end: TransferTraj on slices of the real data of all three cities (Porto, San Francisco,
Chengdu), through the same rules as the full job: ingest, point features, GPS split, pretraining
in-city and on the source cities, fine-tuning per transfer setting and task, the table."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from e2e_support import snakemake

METRICS = {"tp": {"MAE", "RMSE"}, "tr": {"MAE", "RMSE"}, "od_tte": {"MAE", "RMSE", "MAPE"}}


@pytest.fixture(scope="module")
def transfertraj_run(repo, workflow_run):
    proc = snakemake(repo, workflow_run, "results/porto/transfertraj.csv")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workflow_run


def test_table_has_every_setting_variant_task_and_metric(transfertraj_run):
    table = pd.read_csv(transfertraj_run / "results/porto/transfertraj.csv")
    full = table[table["variant"] == "full"]
    assert set(full["setting"]) == {"in-city", "zero-shot", "few-shot"}
    assert sorted(full.loc[full["setting"] == "few-shot", "train_fraction"].unique()) == [0.05, 0.1, 0.2]
    for (setting, fraction), rows in full.groupby(["setting", "train_fraction"]):
        got = {t: set(g["metric"]) for t, g in rows.groupby("task")}
        assert got == METRICS, (setting, fraction)
    ablations = table[table["variant"] != "full"]
    assert set(ablations["variant"]) == {"absolute-position", "single-ffn"}
    assert set(ablations["setting"]) == {"in-city", "zero-shot"}
    for variant, rows in ablations.groupby("variant"):
        assert len(rows) == 2 * sum(len(m) for m in METRICS.values()), variant
    assert all(math.isfinite(v) and v >= 0 for v in table["value"])
    assert (table["n_test"] > 0).all()


def test_zero_shot_never_reads_porto_and_in_city_never_reads_the_sources(transfertraj_run):
    table = pd.read_csv(transfertraj_run / "results/porto/transfertraj.csv")
    zero = table[table["setting"] == "zero-shot"]
    assert (zero["n_train"] == 0).all()
    assert set(zero["pretrain_cities"]) == {"sanfrancisco+chengdu"}
    assert set(table.loc[table["setting"] == "in-city", "pretrain_cities"]) == {"porto"}
    history = pd.read_csv(transfertraj_run / "results/porto/transfertraj/full/pretrain-sources/seed0/pretrain_history.csv")
    assert len(history) >= 1
    log = (transfertraj_run / "logs/porto/transfertraj/full/pretrain-sources/seed0.log").read_text()
    assert "sanfrancisco:" in log and "chengdu:" in log and "porto:" not in log


def test_few_shot_subsets_are_the_stated_fractions_and_nested(transfertraj_run):
    table = pd.read_csv(transfertraj_run / "results/porto/transfertraj.csv")
    tp = table[(table["task"] == "tp") & (table["metric"] == "MAE") & (table["variant"] == "full")]
    n_full = int(tp.loc[tp["setting"] == "in-city", "n_train"].iloc[0])
    few = tp[tp["setting"] == "few-shot"].sort_values("train_fraction")
    for fraction, n in zip(few["train_fraction"], few["n_train"]):
        assert abs(n - fraction * n_full) <= 1, (fraction, n, n_full)
    assert list(few["n_train"]) == sorted(few["n_train"])


def test_point_and_task_accounting_balances(transfertraj_run):
    for city in ("porto", "sanfrancisco", "chengdu"):
        qc = pd.read_csv(transfertraj_run / f"results/{city}/qc/points.csv")
        n_in = int(qc.loc[qc["outcome"] == "in", "count"].sum())
        rest = int(qc.loc[qc["outcome"] != "in", "count"].sum())
        assert n_in == rest > 0, city
        trips = pd.read_parquet(transfertraj_run / f"results/{city}/trips.parquet", columns=["trip_id"])
        assert n_in == len(trips), city
    for path in (transfertraj_run / "results/porto/qc").glob("transfertraj_task_*.csv"):
        qc = pd.read_csv(path)
        for split, g in qc.groupby("split"):
            n_in = int(g.loc[g["outcome"] == "in", "count"].sum())
            assert n_in == int(g.loc[g["outcome"] != "in", "count"].sum()), (path.name, split)
