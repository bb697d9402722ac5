"""Helpers of the end-to-end tests: run Snakemake in a working directory, the slice config."""
from __future__ import annotations

import subprocess
import sys

import yaml


def snakemake(repo, work, *args, timeout=1200):
    """Run Snakemake on the repo's Snakefile in ``work`` with 2 cores; returns the CompletedProcess."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(work),
           "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def small_config(repo, data_root):
    """The default config on a slice of the real data: 500 Porto, 2,000 San Francisco and 300
    Chengdu trips (the same readers as the full files), small models, one epoch each."""
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    cfg["data_root"] = str(data_root)
    cfg["cities"]["porto"]["caps"]["max_trips"] = 500
    cfg["cities"]["sanfrancisco"]["caps"]["max_trips"] = 2000
    cfg["cities"]["chengdu"]["caps"]["max_trips"] = 300
    for city in cfg["cities"].values():
        if city.get("osm"):
            city.setdefault("map_matching", {})["ubodt_delta"] = 1500
    tt = cfg["transfertraj"]  # a small TransferTraj (still C = 8 experts, top-4) and one epoch each
    tt["hparams"] = {**tt["hparams"], "d_model": 32, "heads": 2, "ffn_dim": 64, "gate_hidden": 16, "max_len": 64}
    tt["pretrain"] = {**tt["pretrain"], "epochs": 1, "max_trips_per_city": 200}
    tt["finetune"] = {**tt["finetune"], "epochs": 1}
    m = cfg["models"]["metatrl"]
    m["hparams"].update(d_model=32, heads=2, ffn_dim=64, layers=1, gat_layers=1)
    m["pretrain"].update(meta_epochs=1, source_steps=3, query_batches=1, target_epochs=1)
    for name, model in cfg["models"].items():
        model["hparams"] = {**model["hparams"], **{k: v for k, v in
                            {"d_model": 32, "heads": 2, "ffn_dim": 64, "layers": 1, "gat_layers": 1}.items()
                            if k in model["hparams"]}}
        model["finetune"] = {**model["finetune"], "epochs": 1}
        if "epochs" in model.get("pretrain", {}):
            model["pretrain"] = {**model["pretrain"], "epochs": 1}
    return cfg
