"""One fine-tuning job per run (trajzoo.evaluation.evaluate_run) with TransferTraj on a real Porto
slice: the point tasks (TP, TR, OD-TTE) and SIM run one after the other in one call write exactly
the tables each task's own call writes, in-city (fraction 1) and few-shot (fraction 0.5).

What this guards: each task fine-tunes a COPY of the loaded model (without it, TR starts from the
weights TP fine-tuned and SIM embeds with them) from the RESTORED global RNG state (without it,
TR's SC-MoE gate noise, drawn from the global torch RNG during training, continues TP's stream).
The road-task version of this test is tests/core/test_evaluation_run.py."""
from __future__ import annotations

import logging

import pandas as pd
import pytest
import torch

from trajzoo import evaluation
from trajzoo.data.points import point_rows
from trajzoo.data.prepared import PreparedCity
from trajzoo.evaluation import TASK_OUTPUTS, TaskJob, evaluate_run
from trajzoo.ingest.filters import filter_trips
from trajzoo.ingest.porto import read_porto_trips
from trajzoo.points import point_features, read_pois
from trajzoo.registry import get_model
from trajzoo.splits import split_trips

CRS, TZ = "EPSG:32629", "Europe/Lisbon"
PORTO_BBOX = [-8.70, 41.13, -8.54, 41.195]
POI_FILES = ("porto/poi/tourism_pois.csv", "porto/poi/osm_amenity_nodes.csv")
#: tiny, but with SC-MoE gate noise (drawn from the global torch RNG in training)
HP = {"d_model": 16, "heads": 2, "ffn_dim": 16, "layers": 1, "experts": 4, "top_k": 2, "gate_hidden": 8,
      "max_len": 32, "gate_noise": 1.0}
TASKS = ["tp", "tr", "od_tte", "sim"]  # the evaluate rule's order for TransferTraj
OPTIONS = {"sim": {"n_queries": 8, "database_size": 20}}


@pytest.fixture(scope="module")
def porto_points(data_root):
    """Point rows of about 100 real Porto trips (POI context, no road network), split 60/20/20."""
    block, _ = next(read_porto_trips(data_root / "porto/train.csv.xz", max_trips=150))
    kept, _ = filter_trips(block, PORTO_BBOX, 5, 400, 50)
    points, _ = point_features(kept.reset_index(drop=True), CRS, TZ,
                               pois=read_pois([data_root / p for p in POI_FILES]))
    splits, _ = split_trips(list(points["trip_id"]), {"train": 0.6, "val": 0.2, "test": 0.2}, 5)
    table = points.merge(splits, on="trip_id")
    return {s: point_rows(table[table["split"] == s]) for s in ("train", "val", "test")}


@pytest.fixture
def transfertraj_loader(monkeypatch, porto_points):
    """load_city_and_model on the real slice: an untrained TransferTraj built from the global torch
    RNG (so the RNG state after loading is not the seeded one) on a fresh city each call."""
    def load(job, files):
        city = PreparedCity("porto", TZ, points={s: list(r) for s, r in porto_points.items()})
        plugin = get_model("transfertraj")
        return city, plugin, plugin.build_model(HP), torch.device("cpu")
    monkeypatch.setattr(evaluation, "load_city_and_model", load)


def _job(fraction):
    return {"model": "transfertraj", "variant": "full", "setting": "in-city" if fraction == 1 else "few-shot",
            "fraction": fraction, "city": "porto", "timezone": TZ,
            "finetune": {"epochs": 1, "batch_size": 16, "patience": 2, "lr": 3e-3}, "seed": 1, "device": "cpu",
            "inputs": ["points"], "training_options": None}


def _run(folder, names, fraction):
    folder.mkdir(parents=True, exist_ok=True)
    specs = [TaskJob(t, OPTIONS.get(t, {}), {k: str(folder / f"{t}.{k}") for k in TASK_OUTPUTS},
                     str(folder / f"checkpoints_{t}")) for t in names]
    return evaluate_run(_job(fraction), {}, specs, logging.getLogger("test"))


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_point_tasks_in_one_job_write_the_tables_of_one_job_per_task(tmp_path, transfertraj_loader, fraction):
    """Every table of TP, TR, OD-TTE and SIM from one call over all four equals, byte for byte, the
    table of a call with that task alone (the first task fine-tunes and draws random numbers)."""
    together = _run(tmp_path / "together", TASKS, fraction)
    assert together["tr"].n_train > 0 and together["sim"].n_test > 0  # fine-tuned and searched
    differ = []
    for task in TASKS[1:]:
        _run(tmp_path / task, [task], fraction)
        for kind in ("metrics", "history", "qc"):
            name = f"{task}.{kind}"
            if (tmp_path / "together" / name).read_bytes() != (tmp_path / task / name).read_bytes():
                differ.append(f"{task} {kind}")
        try:
            pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "together" / f"{task}.predictions"),
                                          pd.read_parquet(tmp_path / task / f"{task}.predictions"), check_exact=True)
        except AssertionError:
            differ.append(f"{task} predictions")
    assert differ == [], f"tables of one call over {TASKS} differ from one-task calls: {differ}"
