"""End to end on the real-data slices of Porto and San Francisco (tests/e2e_support.py): every
TrajGANR row (GeoCLIP, location only, foundation model pooled, no / segment / fine-grain
alignment, synthetic / masked query time) on every location task on Porto, the full model on San
Francisco, on a copy of the base run (its data stages and TransferTraj in-city pretrainings are
reused), tiny sizes, one epoch."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from e2e_support import TRAJGANR_EXPERIMENTS, copy_run, small_config, snakemake

pytestmark = pytest.mark.e2e

METRICS = {"traffic_speed": {"MAE", "RMSE", "R2"}, "road_popularity": {"F1", "AUPRC"},
           "aoi_function": {"L1", "cosine"}, "hard_braking": {"MAE", "RMSE", "R2"}}


def test_trajganr_rows_on_both_cities(workflow_run, repo, data_root, tmp_path):
    work = copy_run(workflow_run, tmp_path / "run")
    cfg = small_config(repo, data_root)
    cfg["experiments"]["runs"] = cfg["experiments"]["runs"] + TRAJGANR_EXPERIMENTS
    (work / "trajganr.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(repo, work, "results/porto/trajganr.csv", "results/sanfrancisco/trajganr.csv",
                     "--configfile", str(work / "trajganr.yaml"), timeout=1500)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted((work / "logs").rglob("*.log"))
                         if "trajganr" in str(p) or "locations" in str(p))
        pytest.fail(f"snakemake failed:\n{proc.stderr[-3000:]}\n{logs}")
    variants = {"full", "location-only", "foundation-pooled", "no-align", "segment-align", "masked-time"}
    from trajzoo_trajganr.baselines import geoclip_available
    if geoclip_available():
        variants.add("geoclip")
    for city in ("porto", "sanfrancisco"):
        table = pd.read_csv(work / f"results/{city}/trajganr.csv")
        assert set(table["variant"]) == (variants if city == "porto" else {"full"}), city
        for variant, g in table.groupby("variant"):
            got = {t: set(x["metric"]) for t, x in g.groupby("task")}
            # San Francisco has no POI file, so no AOI function task
            expected = METRICS if city == "porto" else {t: m for t, m in METRICS.items() if t != "aoi_function"}
            assert got == expected, (city, variant)
        assert all(math.isfinite(v) for v in table["value"]) and (table["n_test"] > 0).all()
        qc = pd.read_csv(work / f"results/{city}/eval/trajganr/full/in-city/seed0/traffic_speed_qc.csv")
        for _, g in qc.groupby("split"):
            c = dict(zip(g["outcome"], g["count"]))
            assert c["in"] == c["kept"] + sum(v for k, v in c.items() if k.startswith("rejected:"))
    # no label-window trip reaches a model input: the features read exactly the train trips
    log = (work / "logs/porto/features/trajganr/full/in-city/seed0/locations.log").read_text()
    points = pd.read_parquet(work / "results/porto/points.parquet", columns=["trip_id"]).merge(
        pd.read_parquet(work / "results/porto/splits.parquet"), on="trip_id")
    assert f"from {int((points['split'] == 'train').sum())} train trips" in log
