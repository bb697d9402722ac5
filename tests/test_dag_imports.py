"""Building the Snakemake DAG does not import torch, PyG, scikit-learn, SciPy or transformers
(issue 14).

Every ``snakemake`` invocation (each dry run, each SLURM job, which re-parses the workflow)
executes ``workflow/rules/common.smk``, which loads every configured model plugin and task class.
What the DAG needs from them is metadata and config checks; the heavy libraries (about 5 s of a
7 s dry run) are imported only where a model is built, trained, loaded or scored. These tests
run the DAG's plugin and task calls, and the real ``snakemake -n``, in a fresh Python and list
the heavy modules it ended up with; and check that the lazily imported run plans exactly the
jobs of a run with every heavy module imported first (the state before issue 14).
"""
from __future__ import annotations

import copy
import json
import re
import subprocess
import sys

import pytest
import yaml

#: Top-level modules that must not be imported when the DAG is built.
HEAVY = ("torch", "torch_geometric", "sklearn", "scipy", "transformers")

#: What common.smk (and the rule files) ask of every configured plugin and task, in a fresh Python.
PLUGIN_AND_TASK_CALLS = r"""
import json, sys
import yaml
from trajzoo.config import check_city_config
from trajzoo.download import plan_inputs
from trajzoo.experiments import expand_experiments
from trajzoo.mapmatching.fmm import resolve_ubodt_delta
from trajzoo.registry import get_model, list_readers, task_class

config = yaml.safe_load(open(sys.argv[1]))
plugins = {}
for name, section in config["models"].items():
    p = plugins[name] = get_model(name)
    p.check_config(section)
    (p.name, p.inputs, p.settings, p.task_kinds, p.default_setting)
    if "points" in p.inputs and "point" in p.task_kinds:
        int(p.hparams_cls.from_dict(section.get("hparams") or {}).max_len)
    hasattr(p, "embed_rows")
    if hasattr(p, "unavailable_variants"):
        p.unavailable_variants(section)
    if hasattr(p, "depends_on"):
        p.depends_on(section)
list_readers()
for city, c in config["cities"].items():
    check_city_config(city, c)
    if c.get("osm"):
        resolve_ubodt_delta(c)
    for t in c["tasks"]:
        cls = task_class(t)
        (cls.input_kind, getattr(cls, "required_inputs", ()), getattr(cls, "recovered", None))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))))
"""

#: ``snakemake -n`` in this process (argv[1:] are its arguments); optionally with every heavy module
#: imported first (argv[1] == "--eager"), as before issue 14. Prints the log, then the heavy modules.
SNAKEMAKE_IN_PROCESS = r"""
import json, sys
heavy = ("torch", "torch_geometric", "sklearn", "scipy", "transformers")
args = sys.argv[1:]
if args[0] == "--eager":
    args = args[1:]
    import importlib
    for m in heavy + (
            "trajzoo.metrics", "trajzoo.data.city", "trajzoo.data.points", "trajzoo.data.views",
            "trajzoo.training.loop", "trajzoo.training.point_tasks", "trajzoo.training.location_tasks",
            "trajzoo_metatrl.meta_learning", "trajzoo_baselines.training", "trajzoo_baselines.start.objective",
            "trajzoo_baselines.transformer_mlm", "trajzoo_smartraj2.pretraining", "trajzoo_transfertraj.training",
            "trajzoo_trajganr.training", "trajzoo_trajganr.model"):
        importlib.import_module(m)
import snakemake.cli
sys.argv = ["snakemake", *args]
try:
    snakemake.cli.main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
sys.stderr.flush()
print("\nHEAVY-MODULES " + json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))), flush=True)
sys.exit(code)
"""


@pytest.fixture
def config(repo, data_root):
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    cfg["data_root"] = str(data_root)
    return cfg


def heavy_after_plugin_and_task_calls(repo, tmp_path, cfg) -> list[str]:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = subprocess.run([sys.executable, "-c", PLUGIN_AND_TASK_CALLS, str(tmp_path / "config.yaml"), ",".join(HEAVY)],
                         capture_output=True, text=True, timeout=300, cwd=repo)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_plugin_and_task_metadata_import_no_heavy_module(repo, tmp_path, config):
    """get_model / check_config / hparams_cls / unavailable_variants / task_class of every model and
    task of the default config leave torch, PyG, sklearn, scipy and transformers unimported."""
    assert heavy_after_plugin_and_task_calls(repo, tmp_path, config) == []


def test_the_check_sees_an_import(repo, tmp_path, config):
    """The check is not vacuous: a task module that imports sklearn's metrics (trajzoo.metrics)
    at module level shows up."""
    code = PLUGIN_AND_TASK_CALLS.replace("import yaml\n", "import yaml\nimport trajzoo.metrics\n", 1)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "config.yaml"), ",".join(HEAVY)],
                         capture_output=True, text=True, timeout=300, cwd=repo)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "sklearn" in json.loads(run.stdout.strip().splitlines()[-1])


def dry_run_in_process(repo, tmp_path, cfg, target: str, eager: bool = False) -> tuple[str, list[str]]:
    """``snakemake -n <target>`` on ``cfg`` in a fresh Python: (its log, the heavy modules imported)."""
    work = tmp_path / ("eager" if eager else "lazy")
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(copy.deepcopy(cfg)))
    args = ["-n", "--snakefile", str(repo / "Snakefile"), "--directory", str(work),
            "--configfile", str(work / "config.yaml"), "--cores", "2", target]
    run = subprocess.run([sys.executable, "-c", SNAKEMAKE_IN_PROCESS, *(["--eager"] if eager else []), *args],
                         capture_output=True, text=True, timeout=600, cwd=repo)
    log = run.stderr + run.stdout
    assert run.returncode == 0, log[-3000:]
    marker = [line for line in run.stdout.splitlines() if line.startswith("HEAVY-MODULES ")]
    assert marker, log[-3000:]
    return log, json.loads(marker[-1].split(" ", 1)[1])


def planned_jobs(log: str) -> list[str]:
    """The dry run's jobs, order-free: each ``rule`` block's fields (jobid and reason left out; the
    comma-separated values sorted, since Snakemake prints sets in hash order), plus the
    ``Would remove temporary output`` lines and the unavailable-variant warnings."""
    jobs, other, current = [], [], None
    for line in log.splitlines():
        if line.startswith(("rule ", "localrule ")):
            current = [line.strip()]
            jobs.append(current)
        elif current is not None and line.startswith("    ") and ":" in line:
            key, value = line.strip().split(":", 1)
            if key not in ("jobid", "reason"):
                current.append(f"{key}: " + ", ".join(sorted(v.strip() for v in value.split(","))))
        else:
            current = None
            if line.startswith(("Would remove temporary output", "WARNING: models.")):
                other.append(line.strip())
    return sorted("\n".join([j[0], *sorted(j[1:])]) for j in jobs) + sorted(other)


@pytest.mark.e2e
@pytest.mark.parametrize("target", ["all", "results/porto/metatrl.csv"])
def test_dag_build_imports_no_heavy_module_and_plans_the_same_jobs(repo, tmp_path, config, target):
    """The real ``snakemake -n`` (default target and the main table) ends without any heavy
    module imported, and plans job for job what it plans with all of them imported first."""
    lazy_log, heavy = dry_run_in_process(repo, tmp_path, config, target)
    assert heavy == [], f"building the DAG imported {heavy}"
    eager_log, eager_heavy = dry_run_in_process(repo, tmp_path, config, target, eager=True)
    assert set(eager_heavy) == set(HEAVY)
    lazy_jobs, eager_jobs = planned_jobs(lazy_log), planned_jobs(eager_log)
    total = re.search(r"^total\s+(\d+)$", lazy_log, re.M)
    assert total and sum(j.startswith(("rule ", "localrule ")) for j in lazy_jobs) == int(total.group(1)) > 10
    assert lazy_jobs == eager_jobs
