"""Shared test fixtures: where the real data mirror is."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from e2e_support import small_config

REPO = Path(__file__).resolve().parents[1]
NETGUARD = Path(__file__).resolve().parent / "netguard"

# Block the network for this process and every Python process the tests start (Snakemake, rule
# scripts): they import tests/netguard/sitecustomize.py through PYTHONPATH.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NETGUARD), os.environ.get("PYTHONPATH")]))
sys.path.insert(0, str(NETGUARD))
import sitecustomize  # noqa: E402,F401  (the guard; a no-op if Python already imported it)
DATA_ROOT = Path(os.environ.get("TRAJZOO_DATA_ROOT", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not DATA_ROOT.is_dir():
        pytest.fail(f"real data mirror not found at {DATA_ROOT} (set TRAJZOO_DATA_ROOT)")
    return DATA_ROOT


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def real_road_network(data_root):
    """``build(file, crs) -> (segments, adjacency)``: :func:`trajzoo.roads.network.build_road_network`
    on a real extract of the mirror (``{"file": file}``), parsed once per session per (file, CRS);
    each call returns deep copies, so no test sees another's changes. For the test modules that
    need a real network as an input (map matching, points); tests/core/test_roads.py builds its own."""
    import copy

    cache: dict = {}

    def build(file: str, crs: str):
        if (file, crs) not in cache:
            from trajzoo.roads.network import build_road_network

            cache[(file, crs)] = build_road_network({"file": file}, data_root, crs)
        return copy.deepcopy(cache[(file, crs)])

    return build


@pytest.fixture(scope="session")
def real_ingest(data_root):
    """``ingest(city) -> (trips, rejections, qc)``: :func:`trajzoo.ingest.ingest_city` of a city
    config on the mirror, run once per session per config (the map-matching test modules slice
    the same real files); each call returns deep copies."""
    import copy
    import json

    cache: dict = {}

    def ingest(city: dict):
        key = json.dumps(city, sort_keys=True)
        if key not in cache:
            from trajzoo.ingest import ingest_city

            cache[key] = ingest_city(city, data_root)
        return copy.deepcopy(cache[key])

    return ingest


def pytest_collection_modifyitems(config, items):
    """Every test not marked e2e, slurm or report is a unit test (``pytest -m unit``)."""
    for item in items:
        if not any(item.get_closest_marker(m) for m in ("e2e", "slurm", "report")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def workflow_run(repo, data_root, tmp_path_factory):
    """The base run: a working directory in which the default target (every table, summary,
    transfer matrix and figure) was built on the slice. Tests read it and never write into it
    (they copy it, see ``e2e_support.copy_run``)."""
    reuse = os.environ.get("TRAJZOO_E2E_BASE")  # a finished base run to reuse (development only)
    if reuse:
        return Path(reuse)
    work = tmp_path_factory.mktemp("e2e")
    (work / "config.yaml").write_text(yaml.safe_dump(small_config(repo, data_root)))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((work / "logs").rglob("*.log")))
        pytest.fail(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-4000:]}\n{logs}")
    return work
