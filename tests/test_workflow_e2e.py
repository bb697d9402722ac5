"""End to end: the Snakemake DAG on a small slice of the real data (500 Porto and 2,000 San
Francisco trips, read from ../shared/data by the same code as the full files), one epoch each."""
from __future__ import annotations

import math
import shutil

import pandas as pd

from e2e_support import snakemake

EXPECTED = {
    "tte": {"MAE", "MAPE", "RMSE"},
    "dp": {"Micro-F1", "Macro-F1", "Recall@5"},
    "cla_taxi": {"Micro-F1", "Macro-F1", "Recall@5"},
    "cla_calltype": {"Micro-F1", "Macro-F1"},
}


def test_every_metric_present_and_finite(workflow_run):
    table = pd.read_csv(workflow_run / "results/porto/metatrl.csv")
    for task, metrics in EXPECTED.items():
        got = set(table.loc[table["task"] == task, "metric"])
        assert got == metrics, f"{task}: {got}"
    assert all(math.isfinite(v) for v in table["value"])
    assert (table["n_test"] > 0).all() and (table["n_train"] > 0).all()
    assert set(table["city"]) == {"porto"} and set(table["source_cities"]) == {"sanfrancisco"}
    assert table["config_digest"].nunique() == 1 and table["seed"].eq(0).all()


def test_target_only_table_summary_and_embeddings(workflow_run):
    other = pd.read_csv(workflow_run / "results/porto/metatrl-target-only.csv")
    assert set(other["source_cities"]) == {"none"} and set(other["variant"]) == {"target-only"}
    summary = (workflow_run / "results/porto/summary.md").read_text()
    assert "| metatrl |" in summary and "| metatrl-target-only |" in summary
    emb = pd.read_parquet(workflow_run / "results/porto/embeddings/metatrl.parquet")
    matched = pd.read_parquet(workflow_run / "results/porto/matched.parquet")
    assert len(emb) == len(matched) and len(emb["embedding"].iloc[0]) == 32


def test_accounting_on_the_real_slice(workflow_run):
    for city, n_in in (("porto", 500), ("sanfrancisco", 2000)):
        qc = {s: pd.read_csv(workflow_run / f"results/{city}/qc/{s}.csv") for s in ("ingest", "map_matching", "split")}
        counts = {s: dict(zip(t["outcome"], t["count"])) for s, t in qc.items()}
        assert counts["ingest"]["in"] == n_in
        for stage, c in counts.items():
            rejected = sum(v for k, v in c.items() if k.startswith("rejected:"))
            assert c["in"] == c["kept"] + rejected, (city, stage)
        assert counts["map_matching"]["in"] == counts["ingest"]["kept"]
        assert counts["split"]["in"] == counts["map_matching"]["kept"]


def test_qc_report_balances_every_stage(workflow_run):
    text = (workflow_run / "results/porto/qc.md").read_text()
    for stage in ("ingest", "map_matching", "split", "task:tte", "task:dp", "task:cla_taxi", "task:cla_calltype"):
        assert f"| {stage} |" in text, stage
    assert "**NO**" not in text and text.count("| yes |") == 7


def test_every_rule_wrote_its_log(workflow_run):
    logs = {p.relative_to(workflow_run / "logs").as_posix() for p in (workflow_run / "logs").rglob("*.log")}
    for name in ("porto/ingest_trajectories.log", "porto/build_road_network.log", "porto/map_match.log",
                 "porto/split_trips.log", "porto/road_features.log", "porto/pretrain/metatrl/seed0.log",
                 "porto/finetune/metatrl/seed0/tte.log", "porto/summary.log", "porto/qc_report.log",
                 "sanfrancisco/map_match.log", "porto/results_table/metatrl.log"):
        assert name in logs, name


def planned_rules(repo, work, override: str) -> set[str]:
    (work / "override.yaml").write_text(override)
    proc = snakemake(repo, work, "-n", "results/porto/metatrl.csv", "--configfile", str(work / "config.yaml"),
                     str(work / "override.yaml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {line.split()[1].rstrip(":") for line in proc.stdout.splitlines() if line.startswith(("rule ", "localrule "))}


def test_map_matching_change_reruns_matching_and_after_only(repo, workflow_run):
    rules = planned_rules(repo, workflow_run, "cities:\n  porto:\n    map_matching:\n      gps_error: 40\n")
    assert {"map_match", "split_trips", "road_features", "pretrain", "finetune_task", "results_table"} <= rules
    assert not rules & {"ingest_trajectories", "build_road_network", "build_ubodt"}  # the UBODT depends on the delta only


def test_model_hyperparameter_change_reruns_training_only(repo, workflow_run):
    rules = planned_rules(repo, workflow_run, "models:\n  metatrl:\n    hparams:\n      gamma: 0.4\n")
    assert {"pretrain", "finetune_task", "results_table"} <= rules
    assert not rules & {"ingest_trajectories", "build_road_network", "map_match", "split_trips", "road_features"}


def test_same_seed_same_numbers(repo, workflow_run):
    table = workflow_run / "results/porto/metatrl.csv"
    before = table.read_bytes()
    for ckpt in (workflow_run / "results/porto").glob("*/*/seed*/checkpoints"):
        shutil.rmtree(ckpt)  # no resuming: train again from scratch
    proc = snakemake(repo, workflow_run, "--forcerun", "pretrain", "results/porto/metatrl.csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert table.read_bytes() == before


def test_baselines_produce_finite_metrics_through_the_same_tasks(repo, workflow_run):
    targets = [f"results/porto/{m}.csv" for m in ("random", "transformer-mlm", "start", "node2vec")]
    proc = snakemake(repo, workflow_run, *targets)
    assert proc.returncode == 0, proc.stderr[-3000:]
    main = pd.read_csv(workflow_run / "results/porto/metatrl.csv")
    for target in targets:
        table = pd.read_csv(workflow_run / target)
        assert set(zip(table["task"], table["metric"])) == set(zip(main["task"], main["metric"])), target
        assert all(math.isfinite(v) for v in table["value"]), target
        assert (table["n_test"].to_numpy() == main["n_test"].to_numpy()).all()  # same split, same tasks
    summary = pd.read_csv(workflow_run / "results/porto/summary.csv")
    assert set(summary["run"]) == {"metatrl", "metatrl-target-only", "random", "transformer-mlm", "start", "node2vec"}
    text = (workflow_run / "results/porto/summary.md").read_text()
    assert "improvement of metatrl" in text and "**" in text


def test_several_seeds_repeat_every_run(repo, workflow_run):
    (workflow_run / "override.yaml").write_text("seed: [0, 1]\n")
    proc = snakemake(repo, workflow_run, "-n", "results/porto/metatrl.csv", "--configfile",
                     str(workflow_run / "config.yaml"), str(workflow_run / "override.yaml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "results/porto/models/metatrl/seed1/encoder.pt" in out
    assert "results/porto/eval/random/seed1/dp.csv" in out
    assert "results/porto/models/metatrl/seed0/encoder.pt" not in out  # seed 0 is done already
