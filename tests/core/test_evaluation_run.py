"""One fine-tuning job per run (trajzoo.evaluation.evaluate_run): the tasks fine-tuned one after
the other in one call write exactly the tables each task's own call writes, for the road models
MetaTRL, START and Transformer-MLM on a toy city, SIM included (the model is loaded, consuming
random numbers, once; every task starts from a copy of it and the same RNG state), and the
per-kind evaluator registry dispatches on ``input_kind``."""
from __future__ import annotations

import logging

import pandas as pd
import pytest
import torch

from trajzoo import evaluation
from trajzoo.data.prepared import PreparedCity
from trajzoo.evaluation import EVALUATORS, TASK_OUTPUTS, LoadedRun, TaskJob, evaluate_run, evaluate_task
from trajzoo.registry import TASK_KINDS, get_model, get_task

from test_tasks import toy_city

HP = {"d_model": 16, "heads": 2, "ffn_dim": 32, "layers": 1, "gat_layers": 1}
#: road models, their tiny sizes (dropout: fine-tuning draws from the global torch RNG) and the
#: tasks run one after the other: each starts after the earlier ones fine-tuned and drew random
#: numbers; SIM embeds with the loaded weights (no fine-tuning)
ROAD_MODELS = {
    "metatrl": (HP, ["tte", "cla_calltype"]),
    "start": ({**HP, "dropout": 0.1}, ["tte", "cla_calltype", "sim"]),
    "transformer-mlm": ({"d_model": 16, "heads": 2, "ffn_dim": 32, "layers": 1, "dropout": 0.1},
                        ["tte", "cla_calltype", "sim"]),
}
SIM_OPTIONS = {"n_queries": 5, "database_size": 8, "min_length": 4}
JOB = {"model": "metatrl", "variant": "full", "setting": "in-city", "fraction": 1.0, "city": "toy",
       "timezone": "Europe/Lisbon", "finetune": {"epochs": 1, "patience": 10, "batch_size": 8}, "seed": 3,
       "device": "cpu", "inputs": ["roads"], "training_options": None}


@pytest.fixture(params=sorted(ROAD_MODELS))
def toy_loader(monkeypatch, request):
    """load_city_and_model on a toy city: the model is built from the global torch RNG (as an
    untrained model's plugin.load does), so the RNG state after loading is not the seeded one.
    Parametrised over :data:`ROAD_MODELS`; returns the model name."""
    name = request.param

    def load(job, files):
        city = PreparedCity("toy", "Europe/Lisbon", road=toy_city(n_trips=40))
        plugin = get_model(name)
        model = plugin.build_encoder(city.road.graph, ROAD_MODELS[name][0])
        return city, plugin, model, torch.device("cpu")
    monkeypatch.setattr(evaluation, "load_city_and_model", load)
    return name


def run_tasks(folder, names, model="metatrl"):
    folder.mkdir(parents=True, exist_ok=True)
    specs = [TaskJob(t, SIM_OPTIONS if t == "sim" else {}, {k: str(folder / f"{t}.{k}") for k in TASK_OUTPUTS},
                     str(folder / f"checkpoints_{t}")) for t in names]
    return evaluate_run({**JOB, "model": model}, {}, specs, logging.getLogger("test"))


def tables(folder, task):
    out = {k: pd.read_csv(folder / f"{task}.{k}") for k in ("metrics", "history", "qc")}
    out["predictions"] = pd.read_parquet(folder / f"{task}.predictions")
    head = torch.load(folder / f"{task}.head", weights_only=True)
    return out, head


def test_tasks_in_one_job_write_the_tables_of_one_job_per_task(tmp_path, toy_loader):
    """Each task's tables from one call over all tasks equal, exactly, its tables from a call with
    that task alone (the first task trains the shared encoder and draws random numbers: without
    the model copy and the RNG restore the second task's tables differ), for every road model of
    :data:`ROAD_MODELS` (TransferTraj's point tasks: tests/transfertraj/test_transfertraj_evaluation_run.py)."""
    names = ROAD_MODELS[toy_loader][1]
    run_tasks(tmp_path / "together", names, toy_loader)
    for task in names:
        run_tasks(tmp_path / task, [task], toy_loader)
        together, head_together = tables(tmp_path / "together", task)
        alone, head_alone = tables(tmp_path / task, task)
        for kind in together:
            pd.testing.assert_frame_equal(together[kind], alone[kind], check_exact=True, obj=f"{task} {kind}")
        for kind in ("metrics", "history", "qc"):  # byte for byte
            assert (tmp_path / "together" / f"{task}.{kind}").read_bytes() == (tmp_path / task / f"{task}.{kind}").read_bytes()
        state_t, state_a = head_together["state_dict"], head_alone["state_dict"]
        if state_t is None:  # SIM: no head (scored on embeddings)
            assert state_a is None
        else:
            assert state_t.keys() == state_a.keys() and all(torch.equal(state_t[k], state_a[k]) for k in state_t)
        assert {k: v for k, v in head_together.items() if k != "state_dict"} == \
            {k: v for k, v in head_alone.items() if k != "state_dict"}


def test_every_task_kind_has_an_evaluator_and_unknown_kinds_are_refused():
    assert set(EVALUATORS) == set(TASK_KINDS)

    class Odd:
        name, input_kind = "odd", "pixels"
    with pytest.raises(ValueError, match="unknown input_kind 'pixels'"):
        evaluate_task(LoadedRun(None, None, torch.nn.Linear(1, 1), "cpu"), Odd(), 1.0, {}, None)


def test_the_evaluator_of_the_task_kind_receives_the_loaded_run(monkeypatch):
    seen = {}
    loaded = LoadedRun("city", "plugin", torch.nn.Linear(1, 1), "cpu", {"features": 1})
    monkeypatch.setitem(EVALUATORS, "road", lambda *args: seen.setdefault("args", args))
    task = get_task("tte")
    evaluate_task(loaded, task, 0.5, {"epochs": 1}, "ctx")
    assert seen["args"] == (loaded, task, 0.5, {"epochs": 1}, "ctx")
