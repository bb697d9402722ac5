"""The SMARTraj2 slice configuration of the end-to-end test (tiny sizes, 1 epoch, small caps)."""
from __future__ import annotations

from e2e_support import small_config

#: Tiny SMARTraj2 sizes and filters loose enough for the 500-trip Porto slice (the paper's
#: 10-cell minimum keeps few of its trips); everything else as the default config.
E2E_HPARAMS = {"d_model": 16, "heads": 2, "ffn_dim": 32, "layers": 1, "gat_layers": 1, "gate_hidden": 16,
               "gate_embed": 8, "min_segments": 5, "min_cells": 3, "min_points": 5}
E2E_PRETRAIN = {"epochs": 1, "batch_size": 32, "max_trips_per_city": 96, "max_val_trips": 32}
E2E_FINETUNE = {"epochs": 1, "batch_size": 32, "max_train_trips": 96, "patience": 1}

#: Every SMARTraj2 setting on Porto (with every task it serves), cross-city on San Francisco, and
#: the ablations (Table 2) on San Francisco (fewer tasks there: fewer evaluation jobs).
E2E_SMARTRAJ2_RUNS = [
    {"models": ["smartraj2"], "targets": ["porto"], "sources": ["sanfrancisco"], "settings": ["cross-city"]},
    {"models": ["smartraj2"], "targets": ["sanfrancisco"], "sources": ["porto"], "settings": ["cross-city"]},
    {"models": ["smartraj2"], "targets": ["porto"], "settings": ["in-city", "untrained"]},
    {"models": ["smartraj2"], "targets": ["sanfrancisco"], "sources": ["porto"], "settings": ["cross-city"],
     "variants": "all", "default": False},
]
#: The tasks of the e2e test per city (the base run's other tasks are not rerun).
E2E_TASKS = {"porto": ["tte", "dp", "road_label", "dest_grid"], "sanfrancisco": ["road_label", "dest_grid"]}


def smartraj2_config(repo, data_root) -> dict:
    """The base e2e slice config with the SMARTraj2 experiments added and tiny SMARTraj2 sizes."""
    cfg = small_config(repo, data_root)
    m = cfg["models"]["smartraj2"]
    m["hparams"] = {**m["hparams"], **E2E_HPARAMS}
    m["pretrain"] = {**m["pretrain"], **E2E_PRETRAIN}
    m["finetune"] = {**m["finetune"], **E2E_FINETUNE}
    cfg["experiments"]["runs"] = list(cfg["experiments"]["runs"]) + E2E_SMARTRAJ2_RUNS
    for city, tasks in E2E_TASKS.items():
        cfg["cities"][city]["tasks"] = list(tasks)
    return cfg
