"""End to end: a trained model used outside Snakemake (trajzoo.bundle, the `trajzoo` console
script) on raw GPS trips of the real Porto file, with the bundle the base run wrote.

The same raw trips go through the bundle's filters and map matching and give the SAME embeddings
as the pipeline's embed rule gave them; every trip read is either embedded or rejected with a
reason; the fine-tuned TTE head gives per-trip minutes. Nothing is written into the base run
(the UBODT goes to tmp_path)."""
from __future__ import annotations

import lzma
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import trajzoo

pytestmark = pytest.mark.e2e

BUNDLE = "results/models/metatrl/full/sanfrancisco-to-porto/seed0/bundle"
N_TRIPS = 40


@pytest.fixture(scope="module")
def raw_csv(data_root, tmp_path_factory):
    """The first 40 trips of the real Porto train.csv (the base run's slice starts with them)."""
    path = tmp_path_factory.mktemp("bundle") / "trips.csv"
    with lzma.open(data_root / "porto/train.csv.xz", "rt") as src:
        path.write_text("".join(next(src) for _ in range(N_TRIPS + 1)))
    return path


def test_bundle_is_self_contained(workflow_run):
    b = workflow_run / BUNDLE
    meta = trajzoo.load_model(b).meta
    assert {"model", "hparams", "seed", "config_digest", "target", "sources", "city_config"} <= set(meta)
    assert meta["target"] == "porto" and meta["sources"] == ["sanfrancisco"] and meta["seed"] == 0
    for t in ("segments", "adjacency", "structural", "attributes", "transitions"):
        assert (b / "roads" / f"{t}.parquet").is_file()
    digest = pd.read_csv(workflow_run / "results/porto/metatrl.csv")["config_digest"].iloc[0]
    assert meta["config_digest"] == digest


def test_embed_new_raw_trips_as_the_pipeline_did(workflow_run, raw_csv, tmp_path):
    model = trajzoo.load_model(workflow_run / BUNDLE)
    result = model.embed(raw_csv, format="porto_csv", ubodt_dir=tmp_path / "ubodt")
    assert result.n_in == N_TRIPS == len(result.embeddings) + len(result.rejections)
    assert result.rejections["reason"].notna().all() and set(result.rejections["stage"]) <= {"ingest", "map_matching"}
    assert len(result.embeddings) >= 10
    d = model.meta["hparams"]["d_model"]
    assert all(len(e) == d for e in result.embeddings["embedding"])
    pipeline = pd.read_parquet(workflow_run / "results/porto/embeddings/metatrl.parquet").set_index("trip_id")
    common = [t for t in result.embeddings["trip_id"] if t in pipeline.index]
    assert len(common) >= 10
    mine = result.embeddings.set_index("trip_id").loc[common, "embedding"]
    np.testing.assert_allclose(np.stack(mine.to_list()), np.stack(pipeline.loc[common, "embedding"].to_list()),
                               rtol=1e-4, atol=1e-5)
    # a trip the bundle rejects was not embedded by the pipeline either
    assert not set(result.rejections["trip_id"]) & set(pipeline.index)


def test_console_scripts_embed_and_predict(workflow_run, raw_csv, tmp_path):
    exe = [sys.executable, "-m", "trajzoo.cli"]
    out = tmp_path / "emb.parquet"
    ubodt = ["--ubodt-dir", str(tmp_path / "ubodt")]
    proc = subprocess.run([*exe, "embed", str(workflow_run / BUNDLE), str(raw_csv), "--format", "porto_csv",
                           "--out", str(out), *ubodt], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    emb, rej = pd.read_parquet(out), pd.read_parquet(tmp_path / "emb.rejections.parquet")
    assert len(emb) + len(rej) == N_TRIPS
    heads = sorted((workflow_run / "results/porto/eval/metatrl/full").glob("cross-city*/seed0/tte_head.pt"))
    assert heads
    pred_out = tmp_path / "tte.parquet"
    proc = subprocess.run([*exe, "predict", str(workflow_run / BUNDLE), str(raw_csv), "--format", "porto_csv",
                           "--head", str(heads[0]), "--out", str(pred_out), *ubodt],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pred = pd.read_parquet(pred_out)
    assert list(pred["trip_id"]) == list(emb["trip_id"]) and (pred["task"] == "tte").all()
    assert np.isfinite(pred["prediction"]).all() and (pred["prediction"] > 0).all()  # minutes
    # a head of another pretraining is refused
    other = sorted((workflow_run / "results/porto/eval/metatrl/full").glob("in-city*/seed0/tte_head.pt"))
    if other:
        proc = subprocess.run([*exe, "predict", str(workflow_run / BUNDLE), str(raw_csv), "--format", "porto_csv",
                               "--head", str(other[0]), "--out", str(tmp_path / "x.parquet"), *ubodt],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 2 and "fine-tuned from pretrained weights" in proc.stderr


def test_every_eval_table_has_per_trip_predictions(workflow_run):
    metrics = sorted(p for p in (workflow_run / "results/porto/eval").rglob("seed0/*.csv")
                     if not p.name.endswith(("_history.csv", "_qc.csv")))
    assert metrics
    for path in metrics:
        pred = pd.read_parquet(path.with_name(f"{path.stem}_predictions.parquet"))
        assert "trip_id" in pred and len(pred) > 0, path
        assert path.with_name(f"{path.stem}_head.pt").is_file(), path
    tte = pd.read_parquet(next((workflow_run / "results/porto/eval/metatrl").rglob("tte_predictions.parquet")))
    assert {"trip_id", "y_true", "y_pred"} <= set(tte.columns) and (tte["y_true"] > 0).all()
