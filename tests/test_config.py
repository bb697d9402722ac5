"""The config: the schema checks its structure; the plugins check their sections, task and reader
names, and the experiments, when the DAG is built, so `snakemake -n` fails naming the key
before any job runs."""
from __future__ import annotations

import copy
import re
import subprocess
import sys

import pytest
import yaml
from snakemake.utils import validate

pytestmark = pytest.mark.e2e  # the DAG-build checks start Snakemake (a few seconds each)

SCHEMA = "workflow/schemas/config.schema.yaml"


@pytest.fixture
def config(repo):
    return yaml.safe_load((repo / "config.yaml").read_text())


@pytest.mark.unit
def test_default_config_is_valid_and_points_at_shared_data(config, repo):
    validate(config, str(repo / SCHEMA))
    assert config["data_root"] == "../shared/data"
    assert config["device"] == "cpu"
    first = config["experiments"]["runs"][0]
    assert (first["models"], first["targets"], first["sources"], first["settings"]) == (
        ["metatrl"], ["porto"], ["sanfrancisco"], ["cross-city"])


@pytest.mark.unit
@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["cities"]["porto"].update(colour="red"), "colour"),
    (lambda c: c["cities"]["porto"]["map_matching"].update(gps_error="fifty"), "fifty"),
    (lambda c: c.update(device="tpu"), "tpu"),
    (lambda c: c["experiments"]["runs"][0].update(settings=["half-shot"]), "half-shot"),
])
def test_schema_rejects_bad_config(config, repo, mutate, message):
    bad = copy.deepcopy(config)
    mutate(bad)
    with pytest.raises(Exception, match=message):
        validate(bad, str(repo / SCHEMA))


def dry_run(repo, data_root, tmp_path, cfg, target="results/porto/metatrl.csv"):
    cfg = copy.deepcopy(cfg)
    cfg["data_root"] = str(data_root)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(repo / "Snakefile"),
                           "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
                           "--cores", "2", target], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["models"]["metatrl"]["hparams"].update(d_modle=64), "models.metatrl.hparams: .*d_modle"),
    (lambda c: c["models"]["start"]["pretrain"].update(epochs=-1), "models.start.pretrain: .*epochs"),
    (lambda c: c["models"]["metatrl"]["variants"]["no-time-mask"]["hparams"].update(gamma=7),
     "models.metatrl.variants.no-time-mask.hparams: .*gamma"),
    (lambda c: c["cities"]["porto"]["tasks"].append("tte_typo"), "cities.porto.tasks: .*tte_typo"),
    (lambda c: c["cities"]["porto"]["trajectories"].update(format="gpx"), "cities.porto.trajectories.format: .*gpx"),
    (lambda c: c["experiments"]["runs"].append({"models": ["metatrl"], "targets": ["porto"],
                                                "sources": ["sanfrancisco"], "settings": ["zero-shot"]}),
     "model 'metatrl' does not support setting 'zero-shot'"),
    (lambda c: c["experiments"]["runs"].append({"models": ["transfertraj"], "targets": ["porto"],
                                                "sources": ["porto"], "settings": ["zero-shot"]}),
     "target 'porto' is also a source city"),
    (lambda c: c["experiments"]["runs"].append({"models": ["start"], "targets": ["chengdu"],
                                                "settings": ["in-city"]}),
     "city 'chengdu' has none"),
    (lambda c: c["experiments"]["runs"].append({"models": ["metatrl"], "targets": ["lisbon"],
                                                "settings": ["in-city"]}), "city 'lisbon' is not in cities"),
])
def test_dag_refuses_a_bad_config_naming_the_key(config, repo, data_root, tmp_path, mutate, message):
    mutate(config)
    proc = dry_run(repo, data_root, tmp_path, config)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr  # Snakemake prints a WorkflowError of the Snakefile to stdout
    assert re.search(message, out), out[-2000:]
    assert "Job stats" not in out  # refused before planning any job


def test_main_target_plans_only_its_own_jobs(config, repo, data_root, tmp_path):
    proc = dry_run(repo, data_root, tmp_path, config)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rules = [line.split()[1].rstrip(":") for line in proc.stdout.splitlines() if line.startswith("rule ")]
    # one fine-tuning job for the run, with its 5 tasks (tte, dp, cla_taxi, cla_calltype, sim)
    assert rules.count("pretrain") == 1 and [r for r in rules if r.startswith("evaluate")] == [
        "evaluate_tte_dp_cla_taxi_cla_calltype_sim"]
    assert "results/models/metatrl/full/sanfrancisco-to-porto/seed0/model.pt" in proc.stdout
    assert not {"summary", "gps_points", "qc_report"} & set(rules)


def test_one_source_only_pretraining_serves_every_target(config, repo, data_root, tmp_path):
    config["experiments"]["runs"] = [{"models": ["transfertraj"], "targets": ["porto", "chengdu"],
                                      "sources": ["sanfrancisco"], "settings": ["zero-shot", "few-shot-0.1"]}]
    proc = dry_run(repo, data_root, tmp_path, config, target="all")
    assert proc.returncode == 0, proc.stderr[-2000:]
    pretrainings = set(re.findall(r"results/models/\S+/model\.pt", proc.stdout))
    assert pretrainings == {"results/models/transfertraj/full/from-sanfrancisco/seed0/model.pt"}
    for target in ("porto", "chengdu"):
        assert f"results/{target}/eval/transfertraj/full/zero-shot_from-sanfrancisco/seed0/tp.csv" in proc.stdout
        assert f"results/{target}/eval/transfertraj/full/few-shot-10_from-sanfrancisco/seed0/od_tte.csv" in proc.stdout
