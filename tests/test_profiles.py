"""The execution profiles: profiles/default (the workflow profile, loaded automatically beside
the top-level Snakefile) declares every rule's threads and resources once; profiles/slurm says only
how jobs are submitted and inherits them. Snakemake really loads the default profile, and a cuda
config asks for GPUs on the model rules only (dry runs, no SLURM needed)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_env_pins import rule_blocks, rule_family

REPO = Path(__file__).resolve().parents[1]
PROFILES = {name: yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())
            for name in ("default", "slurm")}
RULES = sorted(set(rule_blocks()) - {"all"})
RESOURCE_KEYS = {"set-threads", "set-resources", "default-resources", "resources", "cores"}


def test_slurm_profile_uses_the_plugin_and_declares_no_rule_resources():
    slurm = PROFILES["slurm"]
    assert slurm["executor"] == "slurm"
    assert not RESOURCE_KEYS & set(slurm), "threads and resources belong to profiles/default only"


def test_default_profile_covers_every_rule_once():
    p = PROFILES["default"]
    missing = [r for r in RULES if r not in p["set-resources"]]
    assert not missing, f"rules without set-resources: {missing}"
    unknown = (set(p["set-resources"]) | set(p["set-threads"])) - set(RULES)
    assert not unknown, f"settings for rules that do not exist: {sorted(unknown)}"
    for rule, res in p["set-resources"].items():
        assert {"mem_mb", "runtime"} <= set(res), f"{rule}: {res}"
    assert "runtime" in p["default-resources"] and "mem_mb" in p["default-resources"]


def test_no_rule_declares_threads():
    declared = [name for name, body in rule_blocks().items() if re.search(r"^\s*threads:", body, flags=re.M)]
    assert not declared, f"threads belong in profiles/default: {declared}"


def test_snakemake_loads_the_default_profile(repo, data_root, tmp_path):
    """A plain `snakemake -n` beside the top-level Snakefile uses profiles/default: its threads
    reach the planned jobs."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(repo / "Snakefile"),
                           "--directory", str(tmp_path), "--cores", "2", "results/porto/metatrl.csv",
                           "--configfile", str(repo / "config.yaml"), "--config",
                           f"data_root={data_root}"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "workflow specific profile" in proc.stderr and "profiles/default" in proc.stderr
    threads = re.findall(r"rule map_match_chunk:.*?threads: (\d+)", proc.stdout, flags=re.S)
    assert threads and set(threads) == {str(PROFILES["default"]["set-threads"]["map_match_chunk"])}


def test_no_resources_in_the_config():
    config = yaml.safe_load((REPO / "config.yaml").read_text())

    def keys(node):
        if isinstance(node, dict):
            for k, v in node.items():
                yield k
                yield from keys(v)
        elif isinstance(node, list):
            for v in node:
                yield from keys(v)
    assert not {"threads", "resources", "mem_mb", "runtime", "gpu", "gpu_model"} & set(keys(config))


def planned_resources(repo, work, data_root, device):
    """rule -> set of 'resources:' lines of a dry run of results/porto/metatrl.csv."""
    import subprocess
    import sys
    from e2e_support import small_config
    cfg = small_config(repo, data_root)
    cfg["device"] = device
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(repo / "Snakefile"),
                           "--directory", str(work), "--profile", str(repo / "profiles/slurm"),
                           "results/porto/metatrl.csv", "--configfile", str(work / "config.yaml")],
                          capture_output=True, text=True, timeout=300, cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out, rule = {}, None
    for line in proc.stdout.splitlines():
        if m := re.match(r"(?:local)?rule (\w+):", line):
            rule = rule_family(m[1])
        elif rule and line.strip().startswith("resources:"):
            res = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].strip().split(", "))
            out.setdefault(rule, []).append(res)
    return out


def test_cuda_config_asks_for_gpus_on_model_rules_only(repo, data_root, tmp_path):
    gpu_rules = {name for name, body in rule_blocks().items() if "gpu=gpu_request" in body}
    assert {"pretrain", "evaluate", "embed"} <= gpu_rules
    for device in ("cuda", "cpu"):
        planned = planned_resources(repo, tmp_path, data_root, device)
        assert gpu_rules & set(planned)
        for rule, jobs in planned.items():
            for res in jobs:
                want = ("1" if device == "cuda" else "0") if rule in gpu_rules else None
                assert res.get("gpu") == want, (device, rule, res)
                # the profile's values reach the jobs
                limits = PROFILES["default"]["set-resources"][rule]
                assert (res["mem_mb"], res["runtime"]) == (str(limits["mem_mb"]), str(limits["runtime"])), (rule, res)


def test_plugin_turns_gpu_resources_into_sbatch_gpus():
    """What the SLURM plugin adds to sbatch for the resources of a job (its own function)."""
    from types import SimpleNamespace
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Res(dict):
        __getattr__ = dict.__getitem__

    def gres(**res):
        return set_gres_string(SimpleNamespace(resources=Res(res))).strip()
    assert gres(gpu=1) == "--gpus=1"
    assert gres(gpu=1, gpu_model="a100") == "--gpus=a100:1"
    assert gres(gpu=0) == ""
    assert gres() == ""
