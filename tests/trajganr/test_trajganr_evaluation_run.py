"""One fine-tuning job per run (trajzoo.evaluation.evaluate_run) with TrajGANR's location tasks:
the tasks run one after the other in one call, sharing the run's frozen location features (the
``location_features`` rule's file, loaded once), write exactly the tables each task's own call
writes. Toy locations (unit case; the end-to-end test runs the real slice)."""
from __future__ import annotations

import logging

import pytest
import torch

from trajzoo import evaluation
from trajzoo.data.prepared import PreparedCity
from trajzoo.evaluation import TASK_OUTPUTS, TaskJob, evaluate_run
from trajzoo.locations import train_view
from trajzoo.registry import get_model

from toy import location_view, straight_rows

SPLITS = {"a": "train", "b": "train", "c": "test", "d": "test", "e": "val"}
HP = {"d_model": 16, "heads": 2, "agg_heads": 2, "ffn_dim": 16, "layers": 1, "window": 8, "dropout": 0.1}
TASKS = ["traffic_speed", "road_popularity", "aoi_function", "hard_braking"]
OPTIONS = {"road_popularity": {"n_classes": 2}, "hard_braking": {"threshold_mps2": 0.1}}


def _city():
    rows = straight_rows()
    points = {s: [dict(r) for t, r in sorted(rows.items()) if SPLITS[t] == s] for s in ("train", "val", "test")}
    return PreparedCity("toy", "UTC", points=points, locations=location_view(rows, SPLITS))


@pytest.fixture
def trajganr_run(monkeypatch, tmp_path):
    """load_city_and_model on the toy city (an untrained TrajGANR built from the global torch RNG)
    and the run's location-features file (as the location_features rule writes it)."""
    plugin = get_model("trajganr")
    torch.manual_seed(0)
    model = plugin.build(None, HP)
    path = tmp_path / "locations.pt"
    torch.save(model.location_features(train_view(_city()), "cpu"), path)

    def load(job, files):
        return _city(), plugin, plugin.build(None, HP), torch.device("cpu")
    monkeypatch.setattr(evaluation, "load_city_and_model", load)
    return {"features": str(path)}


def _run(folder, names, files):
    folder.mkdir(parents=True, exist_ok=True)
    job = {"model": "trajganr", "variant": "full", "setting": "in-city", "fraction": 1.0, "city": "toy",
           "timezone": "UTC", "finetune": {"epochs": 2, "batch_size": 1, "patience": 2, "lr": 1e-2}, "seed": 2,
           "device": "cpu", "inputs": ["locations", "points"], "training_options": None}
    specs = [TaskJob(t, OPTIONS.get(t, {}), {k: str(folder / f"{t}.{k}") for k in TASK_OUTPUTS},
                     str(folder / f"checkpoints_{t}")) for t in names]
    return evaluate_run(job, files, specs, logging.getLogger("test"))


def test_location_tasks_in_one_job_write_the_tables_of_one_job_per_task(tmp_path, trajganr_run):
    together = _run(tmp_path / "together", TASKS, trajganr_run)
    assert all(together[t].n_train > 0 for t in TASKS)
    differ = []
    for task in TASKS[1:]:
        _run(tmp_path / task, [task], trajganr_run)
        for kind in ("metrics", "history", "qc"):
            name = f"{task}.{kind}"
            if (tmp_path / "together" / name).read_bytes() != (tmp_path / task / name).read_bytes():
                differ.append(f"{task} {kind}")
    assert differ == [], f"tables of one call over {TASKS} differ from one-task calls: {differ}"
