"""UBODT delta from each city's sampling interval (issue 14): ``map_matching.ubodt_delta: auto``."""
from __future__ import annotations

import copy

import pytest
import yaml

from trajzoo.mapmatching.fmm import MatchParams, describe_ubodt_delta, resolve_ubodt_delta


@pytest.fixture
def cities(repo):
    return yaml.safe_load((repo / "config.yaml").read_text())["cities"]


def test_default_config_derives_each_citys_delta(cities):
    # 2 (detour) x 50 m/s (filters.max_speed_mps) x the 90th percentile interval, in [500, 5000] m
    assert {c: cities[c]["sampling_interval_s"] for c in cities} == {"porto": 15, "sanfrancisco": 70, "chengdu": 90}
    assert all(cities[c]["map_matching"]["ubodt_delta"] == "auto" for c in ("porto", "sanfrancisco"))
    assert resolve_ubodt_delta(cities["porto"])[0] == 1500.0
    assert resolve_ubodt_delta(cities["sanfrancisco"])[0] == 5000.0  # 7,000 m capped
    assert resolve_ubodt_delta({**cities["chengdu"], "map_matching": {}})[0] == 5000.0  # 9,000 m capped


def test_interval_and_speed_change_the_delta(cities):
    porto = copy.deepcopy(cities["porto"])
    porto["sampling_interval_s"] = 20
    assert resolve_ubodt_delta(porto)[0] == 2000.0
    porto["filters"]["max_speed_mps"] = 30
    assert resolve_ubodt_delta(porto)[0] == 1200.0
    porto["sampling_interval_s"] = 1  # 60 m: raised to the 500 m floor
    assert resolve_ubodt_delta(porto)[0] == 500.0
    sf = copy.deepcopy(cities["sanfrancisco"])
    sf["sampling_interval_s"] = 40
    assert resolve_ubodt_delta(sf)[0] == 4000.0


def test_explicit_number_overrides_auto(cities):
    porto = copy.deepcopy(cities["porto"])
    porto["map_matching"]["ubodt_delta"] = 1500  # what tests/e2e_support.py sets on slices
    porto["sampling_interval_s"] = 60
    delta, how = resolve_ubodt_delta(porto)
    assert delta == 1500.0 and "config" in how
    porto["map_matching"]["ubodt_delta"] = delta
    assert "auto would give 5000 m" in describe_ubodt_delta(porto)


def test_auto_without_interval_names_the_key(cities):
    porto = copy.deepcopy(cities["porto"])
    porto.pop("sampling_interval_s")
    with pytest.raises(ValueError, match="sampling_interval_s"):
        resolve_ubodt_delta(porto)
    with pytest.raises(ValueError, match="resolve_ubodt_delta"):
        MatchParams.from_dict({"ubodt_delta": "auto"})


def _planned_rules(repo, work, override: str) -> set[str]:
    from e2e_support import snakemake

    (work / "override.yaml").write_text(override)
    try:
        proc = snakemake(repo, work, "-n", "results/porto/matched.parquet", "--configfile", str(work / "config.yaml"),
                         str(work / "override.yaml"))
    finally:
        (work / "override.yaml").unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {line.split()[1].rstrip(":") for line in proc.stdout.splitlines()
            if line.startswith(("rule ", "localrule "))}


@pytest.mark.e2e
def test_ubodt_is_rebuilt_only_when_its_delta_changes(repo, workflow_run):
    """On the session's base run (Porto slice, explicit ``ubodt_delta: 1500``): ``auto`` giving the
    same 1,500 m, or an ingest or matching change, plans no build_ubodt; a new interval does."""
    same = _planned_rules(repo, workflow_run, "cities:\n  porto:\n    map_matching:\n      ubodt_delta: auto\n")
    assert "build_ubodt" not in same
    unrelated = _planned_rules(repo, workflow_run, "cities:\n  porto:\n    filters: {min_points: 6}\n"
                                                   "    map_matching: {gps_error: 40}\n")
    assert "build_ubodt" not in unrelated and "ingest_trajectories" in unrelated
    changed = _planned_rules(repo, workflow_run, "cities:\n  porto:\n    sampling_interval_s: 20\n"
                                                 "    map_matching: {ubodt_delta: auto}\n")
    assert {"build_ubodt", "map_match_chunk"} <= changed and "ingest_trajectories" not in changed
