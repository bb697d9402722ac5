"""End to end: the Snakemake DAG on a small slice of the real data (500 Porto, 2,000 San Francisco
and 300 Chengdu trips, read from ../shared/data by the same code as the full files), one epoch
each, every model and setting at least once (tests/e2e_support.py: E2E_EXPERIMENTS).

Every test reads the one base run (``workflow_run``) and writes nothing into it: a test that
reruns or changes a job works on a private copy (``copy_run``), so no test depends on another's
order. Dry runs (``-n``) write nothing and run on the base run directly.
"""
from __future__ import annotations

import re

import math

import pandas as pd
import pytest
import torch

from e2e_support import copy_run, snakemake
from test_env_pins import rule_family

pytestmark = pytest.mark.e2e

ROAD_METRICS = {
    "tte": {"MAE", "MAPE", "RMSE"},
    "dp": {"Micro-F1", "Macro-F1", "Recall@5", "Acc@1", "Acc@5"},
    "cla_calltype": {"Micro-F1", "Macro-F1"},
}
POINT_METRICS = {"tp": {"MAE", "RMSE"}, "tr": {"MAE", "RMSE"}, "od_tte": {"MAE", "RMSE", "MAPE"}}
#: most-similar search: every model, scored on embeddings without fine-tuning (n_train 0)
SIM_METRICS = {"sim": {"MeanRank", "HR@1", "HR@5", "HR@10"}}
LONG_COLUMNS = ["city", "model", "variant", "setting", "train_fraction", "sources", "task", "metric", "value",
                "n_train", "n_test", "seed", "config_digest"]


def test_model_table_is_the_default_setting_with_every_metric(workflow_run):
    table = pd.read_csv(workflow_run / "results/porto/metatrl.csv")
    assert list(table.columns) == LONG_COLUMNS
    for task, metrics in ROAD_METRICS.items():
        assert set(table.loc[table["task"] == task, "metric"]) == metrics, task
    assert all(math.isfinite(v) for v in table["value"])
    assert set(table.loc[table["task"] == "sim", "metric"]) == SIM_METRICS["sim"]
    assert (table["n_test"] > 0).all() and (table.loc[table["task"] != "sim", "n_train"] > 0).all()
    assert set(table["setting"]) == {"cross-city"} and set(table["sources"]) == {"sanfrancisco"}
    assert set(table["city"]) == {"porto"} and set(table["variant"]) == {"full"}
    assert table["config_digest"].nunique() == 1 and table["seed"].eq(0).all()
    table = pd.read_csv(workflow_run / "results/porto/transfertraj.csv")  # its default setting: zero-shot
    point = table[table["model"] == "transfertraj"]
    assert set(point["setting"]) == {"zero-shot"} and set(point["sources"]) == {"chengdu+sanfrancisco"}
    assert {t: set(g["metric"]) for t, g in point.groupby("task")} == {**POINT_METRICS, **SIM_METRICS}
    assert (point["n_train"] == 0).all()


def test_point_model_table_has_the_linear_interpolation_rows(workflow_run):
    """TP / TR rows of the linear-interpolation reference beside the point model: the same test
    trajectories and points per trajectory, values equal to the core baseline recomputed here."""
    from trajzoo.data.prepared import load_prepared
    from trajzoo.registry import get_task
    from trajzoo.tasks.point_base import interpolation_baseline

    table = pd.read_csv(workflow_run / "results/porto/transfertraj.csv")
    ref = table[table["model"] == "linear-interpolation"]
    assert set(ref["setting"]) == {"reference"} and set(ref["variant"]) == {"transfertraj-points"}
    assert {t: set(g["metric"]) for t, g in ref.groupby("task")} == {"tp": {"MAE", "RMSE"}, "tr": {"MAE", "RMSE"}}
    assert (ref["n_train"] == 0).all()
    model_rows = table[table["model"] == "transfertraj"]
    city = load_prepared("porto", "Europe/Lisbon", {"points"},
                         {"splits": workflow_run / "results/porto/splits.parquet",
                          "points": workflow_run / "results/porto/points.parquet"})
    for task_name in ("tp", "tr"):
        task = get_task(task_name)
        rows, _ = task.eligible(city.points["test"])
        expected = interpolation_baseline(task, rows, "porto", max_len=64)  # the slice's TransferTraj max_len
        got = ref[ref["task"] == task_name].set_index("metric")["value"]
        assert got["MAE"] == pytest.approx(expected["MAE"], rel=1e-5)
        assert got["RMSE"] == pytest.approx(expected["RMSE"], rel=1e-5)
        assert set(ref.loc[ref["task"] == task_name, "n_test"]) == set(model_rows.loc[model_rows["task"] == task_name, "n_test"])
    summary = pd.read_csv(workflow_run / "results/porto/summary.csv")
    assert ("linear-interpolation", "reference") in set(zip(summary["model"], summary["setting"]))


def test_summary_lists_every_model_and_setting_on_the_target(workflow_run):
    summary = pd.read_csv(workflow_run / "results/porto/summary.csv")
    got = set(zip(summary["model"], summary["setting"]))
    assert got == {("metatrl", "cross-city"), ("metatrl", "in-city"), ("metatrl", "untrained"),
                   ("start", "in-city"),
                   ("transfertraj", "zero-shot"), ("transfertraj", "few-shot"), ("transfertraj", "in-city"),
                   ("linear-interpolation", "reference")}
    text = (workflow_run / "results/porto/summary.md").read_text()
    assert "improvement of metatrl" in text and "**" in text
    # every road model scores the same test trips of the same split
    road = summary[summary["task"] == "tte"]
    assert road["n_test"].nunique() == 1


def test_one_split_per_city_serves_every_model(workflow_run):
    for city in ("porto", "sanfrancisco"):
        splits = pd.read_parquet(workflow_run / f"results/{city}/splits.parquet").set_index("trip_id")["split"]
        trips = pd.read_parquet(workflow_run / f"results/{city}/trips.parquet", columns=["trip_id"])
        assert set(splits.index) == set(trips["trip_id"])  # the split is of the ingested trips, not of a view
        for model in ("metatrl", "transfertraj") if city == "porto" else ("transfertraj",):
            emb = pd.read_parquet(workflow_run / f"results/{city}/embeddings/{model}.parquet")
            assert (emb["split"].to_numpy() == splits.reindex(emb["trip_id"]).to_numpy()).all(), (city, model)
    emb = pd.read_parquet(workflow_run / "results/porto/embeddings/metatrl.parquet")
    matched = pd.read_parquet(workflow_run / "results/porto/matched.parquet", columns=["trip_id"])
    assert set(emb["trip_id"]) <= set(matched["trip_id"]) and len(emb["embedding"].iloc[0]) == 32


def test_accounting_on_the_real_slice(workflow_run):
    for city, n_in in (("porto", 500), ("sanfrancisco", 2000)):
        qc = {s: pd.read_csv(workflow_run / f"results/{city}/qc/{s}.csv") for s in ("ingest", "map_matching", "split")}
        counts = {s: dict(zip(t["outcome"], t["count"])) for s, t in qc.items()}
        assert counts["ingest"]["in"] == n_in
        for stage, c in counts.items():
            rejected = sum(v for k, v in c.items() if k.startswith("rejected:"))
            assert c["in"] == c["kept"] + rejected, (city, stage)
        assert counts["map_matching"]["in"] == counts["ingest"]["kept"]
        assert counts["split"]["in"] == counts["ingest"]["kept"]


def test_qc_report_balances_every_stage(workflow_run):
    text = (workflow_run / "results/porto/qc.md").read_text()
    stages = ("ingest", "map_matching", "split", "points", "task:tte", "task:dp", "task:cla_calltype",
              "task:tp", "task:tr", "task:od_tte")
    for stage in stages:  # a pipe table from DataFrame.to_markdown: cells are padded
        assert re.search(rf"^\| {re.escape(stage)} +\|", text, flags=re.M), stage
    assert "**NO**" not in text


def test_every_rule_wrote_its_log(workflow_run):
    logs = {p.relative_to(workflow_run / "logs").as_posix() for p in (workflow_run / "logs").rglob("*.log")}
    for name in ("porto/ingest_trajectories.log", "porto/build_road_network.log", "porto/map_match.log",
                 "porto/split_trips.log", "porto/road_features.log", "porto/gps_points.log",
                 "models/metatrl/full/sanfrancisco-to-porto/seed0/pretrain.log",
                 "porto/eval/metatrl/full/cross-city_from-sanfrancisco/seed0/tte.log",
                 "porto/eval/metatrl/full/cross-city_from-sanfrancisco/seed0/finetune.log",
                 "models/transfertraj/full/from-chengdu+sanfrancisco/seed0/pretrain.log",
                 "porto/summary.log", "porto/qc_report.log", "sanfrancisco/map_match.log",
                 "porto/model_table/metatrl.log", "transfer/transfertraj.log"):
        assert name in logs, name


def test_zero_shot_pretraining_reads_the_sources_only(workflow_run):
    log = (workflow_run / "logs/models/transfertraj/full/from-chengdu+sanfrancisco/seed0/pretrain.log").read_text()
    assert "sanfrancisco:" in log and "chengdu:" in log and "porto:" not in log
    log = (workflow_run / "logs/models/transfertraj/full/in-porto/seed0/pretrain.log").read_text()
    assert "porto:" in log and "sanfrancisco:" not in log and "chengdu:" not in log


def test_few_shot_uses_the_stated_fraction_of_train(workflow_run):
    summary = pd.read_csv(workflow_run / "results/porto/summary.csv")
    tp = summary[(summary["model"] == "transfertraj") & (summary["task"] == "tp") & (summary["metric"] == "MAE")]
    n_full = int(tp.loc[tp["setting"] == "in-city", "n_train"].iloc[0])
    few = tp[tp["setting"] == "few-shot"]
    assert float(few["train_fraction"].iloc[0]) == 0.1
    assert abs(int(few["n_train"].iloc[0]) - 0.1 * n_full) <= 1


def test_transfer_tables_and_matrices(workflow_run):
    table = pd.read_csv(workflow_run / "results/transfer/transfertraj.csv")
    assert set(zip(table["city"], table["setting"])) == {("porto", "zero-shot"), ("porto", "few-shot"),
                                                         ("sanfrancisco", "zero-shot")}
    assert table["in_city"].notna().all()  # every target has its in-city row
    folder = workflow_run / "results/transfer/transfertraj"
    matrix = pd.read_csv(folder / "zero-shot_tp_MAE.csv", index_col=0)
    assert set(matrix.index) == {"chengdu+sanfrancisco", "chengdu+porto"}
    assert (folder / "zero-shot_tp_MAE.md").exists()
    assert (workflow_run / "results/transfer/figures/transfertraj.png").stat().st_size > 0
    meta = pd.read_csv(workflow_run / "results/transfer/metatrl.csv")
    assert set(meta["setting"]) == {"cross-city"} and meta["in_city"].notna().all()


def planned(repo, work, target: str, override: str | None = None) -> str:
    args = ["-n", target]
    if override is not None:
        (work / "override.yaml").write_text(override)
        args += ["--configfile", str(work / "config.yaml"), str(work / "override.yaml")]
    proc = snakemake(repo, work, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (work / "override.yaml").unlink(missing_ok=True)
    return proc.stdout


def planned_rules(repo, work, target, override) -> set[str]:
    out = planned(repo, work, target, override)
    # the fine-tuning rules evaluate_<tasks> (one per task set) count as "evaluate"
    return {rule_family(line.split()[1].rstrip(":")) for line in out.splitlines()
            if line.startswith(("rule ", "localrule "))}


def test_map_matching_change_reruns_matching_and_after_only(repo, workflow_run):
    rules = planned_rules(repo, workflow_run, "results/porto/metatrl.csv",
                          "cities:\n  porto:\n    map_matching:\n      gps_error: 40\n")
    assert {"map_match", "road_features", "pretrain", "evaluate", "model_table"} <= rules
    # the UBODT depends on the delta only; the split is of the ingested trips
    assert not rules & {"ingest_trajectories", "build_road_network", "build_ubodt", "split_trips"}


def test_model_hyperparameter_change_reruns_training_only(repo, workflow_run):
    rules = planned_rules(repo, workflow_run, "results/porto/metatrl.csv",
                          "models:\n  metatrl:\n    hparams:\n      gamma: 0.4\n")
    assert {"pretrain", "evaluate", "model_table"} <= rules
    assert not rules & {"ingest_trajectories", "build_road_network", "map_match", "split_trips", "road_features"}


def test_several_seeds_repeat_every_pretraining(repo, workflow_run):
    out = planned(repo, workflow_run, "results/porto/summary.md", "seed: [0, 1]\n")
    assert "results/models/metatrl/full/sanfrancisco-to-porto/seed1/model.pt" in out
    assert "results/porto/eval/metatrl/full/untrained/seed1/dp.csv" in out
    assert "results/models/metatrl/full/sanfrancisco-to-porto/seed0/model.pt" not in out  # seed 0 is done


def test_same_seed_same_numbers(repo, workflow_run, tmp_path):
    """Rerun ONE pretraining and ONE evaluation from scratch in a copy: identical weights and table."""
    work = copy_run(workflow_run, tmp_path / "rerun")
    model = "results/models/metatrl/full/sanfrancisco-to-porto/seed0/model.pt"
    part = "results/porto/eval/metatrl/full/cross-city_from-sanfrancisco/seed0/tte.csv"
    before = {"model": torch.load(work / model, weights_only=True), "part": (work / part).read_bytes()}
    for ckpt in work.glob("results/**/checkpoints"):
        for f in ckpt.glob("*"):
            f.unlink()  # no resuming: train again from scratch
    for target in (model, part):
        proc = snakemake(repo, work, "--force", target)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.count("rule ") + proc.stderr.count("rule ") >= 1
    after = torch.load(work / model, weights_only=True)
    assert after.keys() == before["model"].keys()
    for key, value in before["model"]["state_dict"].items():
        assert torch.equal(after["state_dict"][key], value), key
    assert (work / part).read_bytes() == before["part"]


def test_point_and_task_accounting_balances(workflow_run):
    for city in ("porto", "sanfrancisco", "chengdu"):
        qc = pd.read_csv(workflow_run / f"results/{city}/qc/points.csv")
        n_in = int(qc.loc[qc["outcome"] == "in", "count"].sum())
        rest = int(qc.loc[qc["outcome"] != "in", "count"].sum())
        assert n_in == rest > 0, city
        trips = pd.read_parquet(workflow_run / f"results/{city}/trips.parquet", columns=["trip_id"])
        assert n_in == len(trips), city
    paths = list((workflow_run / "results/porto/eval/transfertraj").rglob("*_qc.csv"))
    assert paths
    for path in paths:
        qc = pd.read_csv(path)
        for split, g in qc.groupby("split"):
            n_in = int(g.loc[g["outcome"] == "in", "count"].sum())
            assert n_in == int(g.loc[g["outcome"] != "in", "count"].sum()), (path.name, split)


def test_grid_cells_stage_on_both_cities(repo, workflow_run, tmp_path):
    """The grid stage (SMARTraj2's grid view) runs once per city when asked, whether the city has
    POIs (Porto) or not (San Francisco), and accounts for every trip and POI."""
    work = copy_run(workflow_run, tmp_path / "grid")
    proc = snakemake(repo, work, "results/porto/grid/cells.parquet", "results/sanfrancisco/grid/cells.parquet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for city, has_pois in (("porto", True), ("sanfrancisco", False)):
        qc = pd.read_csv(work / f"results/{city}/qc/grid.csv")
        trips = qc[qc["stage"] == "grid"].set_index("outcome")["count"]
        rejected = trips[[o for o in trips.index if o.startswith("rejected:")]].sum()
        n_trips = len(pd.read_parquet(work / f"results/{city}/trips.parquet", columns=["trip_id"]))
        assert trips["in"] == n_trips == trips["kept"] + rejected, city
        cells = pd.read_parquet(work / f"results/{city}/grid/cells.parquet")
        assert (len(cells) > 0) == has_pois, city
        if has_pois:
            shares = cells[[c for c in cells.columns if c.startswith("p_")]].sum(axis=1)
            assert ((shares - 1).abs() < 1e-9).all()
