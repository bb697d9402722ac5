"""One fine-tuning job per run (trajzoo.evaluation.evaluate_run) with SMARTraj2 (views attached to
the model, trips filtered by ``eligible_trip_ids``): a road task fine-tuned after another one and
the segment probe after both write exactly the tables of their one-task calls. Tiny synthetic city
(unit case; the end-to-end test runs the real slice)."""
from __future__ import annotations

import logging

import pytest
import torch

from trajzoo import evaluation
from trajzoo.evaluation import TASK_OUTPUTS, TaskJob, evaluate_run
from trajzoo.registry import get_model

from smartraj2_synthetic import prepared
from test_views_tasks import TINY

TASKS = ["tte", "dp", "road_label"]


@pytest.fixture
def smartraj2_loader(monkeypatch):
    """load_city_and_model on the synthetic city: an untrained SMARTraj2 (dropout on) built from the
    global torch RNG, its views attached."""
    def load(job, files):
        city = prepared(n_trips=16)
        plugin = get_model("smartraj2")
        return city, plugin, plugin.build(city, {**TINY, "dropout": 0.1}), torch.device("cpu")
    monkeypatch.setattr(evaluation, "load_city_and_model", load)


def _run(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    job = {"model": "smartraj2", "variant": "full", "setting": "in-city", "fraction": 1.0, "city": "toy",
           "timezone": "UTC", "finetune": {"epochs": 1, "batch_size": 2, "patience": 2, "lr": 1e-2}, "seed": 4,
           "device": "cpu", "inputs": ["grid", "points", "roads"], "training_options": None}
    specs = [TaskJob(t, {"hidden_segments": 1, "min_prefix": 2} if t == "dp" else {},
                     {k: str(folder / f"{t}.{k}") for k in TASK_OUTPUTS}, str(folder / f"checkpoints_{t}"))
             for t in names]
    return evaluate_run(job, {}, specs, logging.getLogger("test"))


def test_tasks_in_one_job_write_the_tables_of_one_job_per_task(tmp_path, smartraj2_loader):
    together = _run(tmp_path / "together", TASKS)
    assert all(together[t].n_train > 0 for t in TASKS)
    differ = []
    for task in TASKS[1:]:
        _run(tmp_path / task, [task])
        for kind in ("metrics", "history", "qc"):
            name = f"{task}.{kind}"
            if (tmp_path / "together" / name).read_bytes() != (tmp_path / task / name).read_bytes():
                differ.append(f"{task} {kind}")
    assert differ == [], f"tables of one call over {TASKS} differ from one-task calls: {differ}"
