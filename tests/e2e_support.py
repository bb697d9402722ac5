"""Helpers of the end-to-end tests: run Snakemake in a working directory, the slice config."""
from __future__ import annotations

import shutil
import subprocess
import sys

import yaml

SMALL_SIZES = {"d_model": 32, "heads": 2, "ffn_dim": 64, "layers": 1, "gat_layers": 1}


def snakemake(repo, work, *args, timeout=1200):
    """Run Snakemake on the repo's Snakefile in ``work`` with 2 cores; returns the CompletedProcess."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(work),
           "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def copy_run(base, dest):
    """A private copy of a finished base run (results, logs, config, .snakemake metadata), so a test
    can rerun or change jobs without touching the base run the other tests read."""
    shutil.copytree(base, dest, symlinks=True, dirs_exist_ok=False)
    return dest


def small_config(repo, data_root):
    """The default config on a slice of the real data: 500 Porto, 2,000 San Francisco and 300
    Chengdu trips (the same readers as the full files), small models, one epoch each."""
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    cfg["data_root"] = str(data_root)
    cfg["cities"]["porto"]["caps"]["max_trips"] = 500
    cfg["cities"]["sanfrancisco"]["caps"]["max_trips"] = 2000
    cfg["cities"]["chengdu"]["caps"]["max_trips"] = 300
    # taxi identification has 6 test trips on this slice: its unit tests cover it
    cfg["cities"]["porto"]["tasks"] = [t for t in cfg["cities"]["porto"]["tasks"] if t != "cla_taxi"]
    for city in cfg["cities"].values():
        if city.get("osm"):
            city.setdefault("map_matching", {})["ubodt_delta"] = 1500
    for name, model in cfg["models"].items():
        model["hparams"] = {**model["hparams"], **{k: v for k, v in SMALL_SIZES.items() if k in model["hparams"]}}
        model["finetune"] = {**model["finetune"], "epochs": 1}
        if "epochs" in model.get("pretrain", {}):
            model["pretrain"] = {**model["pretrain"], "epochs": 1}
    m = cfg["models"]["metatrl"]
    m["pretrain"].update(meta_epochs=1, episodes=2, source_steps=3, query_batches=1, target_epochs=1)
    tt = cfg["models"]["transfertraj"]  # a small TransferTraj (still C = 8 experts, top-4)
    tt["hparams"].update(gate_hidden=16, max_len=64)
    tt["pretrain"]["max_trips_per_city"] = 200
    cfg["experiments"]["runs"] = E2E_EXPERIMENTS
    if "trajganr" in cfg["models"]:  # location tasks (tests/trajganr/test_trajganr_e2e.py)
        cfg["models"]["trajganr"]["hparams"].update(window=32, max_trips_per_location=4, queue_size=256)
        cfg["locations"] = {**cfg.get("locations", {}), "max_locations": 150}
    return cfg


#: TrajGANR's rows added to the base run by its e2e test: every variant on Porto, the full model
#: on San Francisco (the variants run the same code on any city; San Francisco checks a second
#: city, without POIs).
TRAJGANR_EXPERIMENTS = [{"models": ["trajganr"], "targets": ["porto"], "settings": ["in-city"], "variants": "all"},
                        {"models": ["trajganr"], "targets": ["sanfrancisco"], "settings": ["in-city"],
                         "variants": ["full"]}]


#: The base run's experiments: every setting, both road-network targets, a road model in every
#: road setting and a point model in every point setting, with fewer repetitions than the default
#: config (which the dry-run tests check as it is). transformer-mlm and node2vec go through the same
#: rules; their unit tests (tests/baselines) cover them.
E2E_EXPERIMENTS = [
    {"models": ["metatrl"], "targets": ["porto"], "sources": ["sanfrancisco"], "settings": ["cross-city"]},
    {"models": ["metatrl"], "targets": ["porto"], "settings": ["in-city", "untrained"]},
    {"models": ["start"], "targets": ["porto"], "settings": ["in-city"]},
    {"models": ["transfertraj"], "targets": ["porto"], "sources": ["sanfrancisco", "chengdu"],
     "settings": ["zero-shot", "few-shot-0.1"]},
    {"models": ["transfertraj"], "targets": ["porto", "sanfrancisco"], "settings": ["in-city"]},
    {"models": ["transfertraj"], "targets": ["sanfrancisco"], "sources": ["porto", "chengdu"],
     "settings": ["zero-shot"]},
]
