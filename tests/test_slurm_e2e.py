"""End to end on a real SLURM cluster: the real-data DAG of START's Porto pretraining and one
evaluation, from ingest on (Porto ingest, one map-matching chunk and the gather, split, road
features, pretraining, the TTE evaluation: 7 jobs), submitted with sbatch through `--profile
profiles/slurm` (threads and resources from the workflow profile profiles/default underneath it),
in a copy of the local base run (`workflow_run`) with the slice config: the copy brings the road
network and the UBODT (city data stages that do not depend on the trips), `--forcerun
ingest_trajectories` reruns everything from ingest on. Then sacct must show every job COMPLETED
under SLURM, and the table must equal the local run's bit for bit (weights) and byte for byte
(the TTE result).

Needs a running cluster with accounting (.ci/setup_local_slurm.sh sets one up on this
machine, as root). Skipped without one, unless TRAJZOO_REQUIRE_SLURM=1 (CI), then it fails."""
from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from e2e_support import copy_run, small_config
from test_env_pins import rule_family

TARGETS = ["results/models/start/full/in-porto/seed0/model.pt",
           "results/porto/eval/start/full/in-city/seed0/tte.csv"]
SLURM_PROFILE = "profiles/slurm"
pytestmark = pytest.mark.slurm
REQUIRED = os.environ.get("TRAJZOO_REQUIRE_SLURM") == "1"
KILL_AFTER = 480  # seconds; the run takes about 2-3 minutes on 2 cores
# The plugin polls sacct init-seconds after a submission, then waits 10 s longer after every poll
# that finds no job finished (init, 2 init + 10, 3 init + 30, ... s). Every job of this DAG takes
# 10-25 s on 2 cores, most of it the job's own Snakemake and Python start-up, so an init of 6 s
# (polls at 6, 22, 48 s) sees most of them finish at the second poll; 1 s (polls at 1, 12, 33 s)
# waited about 13 s more per job.
# Rerun from ingest on, in the copy of the base run (road network and UBODT come from the copy).
FROM_INGEST = ["--forcerun", "ingest_trajectories"]
# One map-matching chunk (the local base run has 2, the cluster profile 16): on this 2-CPU node
# two 2-thread chunk jobs would run one after the other, and the gathered tables do not depend on
# the number of chunks (tests/core/test_map_matching_fanout.py), so the equality with the base
# run below also checks that.
SAME_CHUNKS = ["--set-scatter", "map_match=1"]
FAST_POLLING = ["--slurm-init-seconds-before-status-checks", "6", "--seconds-between-status-checks", "1"]


def _run(cmd, timeout=30):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def slurm_problem() -> str | None:
    """Why this machine cannot run the test, or None."""
    for tool in ("sbatch", "sinfo", "sacct", "scontrol"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -r requirements.txt)"
    try:
        states = _run(["sinfo", "-h", "-o", "%t"], timeout=15)
        if states.returncode != 0:
            return f"sinfo failed: {states.stderr.strip()}"
        if not set(states.stdout.split()) & {"idle", "mix", "alloc"}:
            return f"no usable node (sinfo states: {states.stdout.split()})"
        acct = _run(["sacct", "-n", "-X", "--starttime", "now-1minutes"], timeout=15)
        if acct.returncode != 0:
            return f"sacct fails, no accounting storage (the plugin needs it): {acct.stderr.strip()}"
    except subprocess.TimeoutExpired as e:
        return f"{e.cmd[0]} did not answer"
    return None


@pytest.fixture(scope="module")
def slurm():
    problem = slurm_problem()
    if problem:
        if REQUIRED:
            pytest.fail(f"TRAJZOO_REQUIRE_SLURM=1 but no SLURM cluster: {problem}")
        pytest.skip(f"no SLURM cluster: {problem} (set one up with .ci/setup_local_slurm.sh as root)")


def node_memory_mb() -> int:
    out = _run(["scontrol", "show", "node", "-o"]).stdout
    return min(int(m) for m in re.findall(r"RealMemory=(\d+)", out))


def profile_for(repo, work, node_mb):
    """The repo's workflow profile (profiles/default: every rule's threads and resources); on a
    node with less memory than a rule asks for, a copy with mem_mb capped at the node's (sbatch
    refuses larger requests)."""
    profile = repo / "profiles" / "default"
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    sizes = [settings["default-resources"]["mem_mb"]] + [r.get("mem_mb", 0) for r in settings["set-resources"].values()]
    if max(sizes) <= node_mb:
        return profile
    settings["default-resources"]["mem_mb"] = min(settings["default-resources"]["mem_mb"], node_mb)
    for res in settings["set-resources"].values():
        if "mem_mb" in res:
            res["mem_mb"] = min(res["mem_mb"], node_mb)
    capped = work.parent / "slurm_profile_capped"
    capped.mkdir(exist_ok=True)
    (capped / "config.yaml").write_text(yaml.safe_dump(settings))
    return capped


def snakemake_slurm(repo, work, profile, *args, kill_after=KILL_AFTER):
    cmd = ["timeout", "-s", "KILL", str(kill_after), sys.executable, "-m", "snakemake",
           "--snakefile", str(repo / "Snakefile"), "--directory", str(work), "--profile",
           str(repo / SLURM_PROFILE), "--workflow-profile", str(profile),
           *args, *FAST_POLLING, *SAME_CHUNKS, "--verbose"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=kill_after + 30, cwd=work)
    finally:
        # never leave jobs of this run behind (killed run, failed run)
        for run_id in re.findall(r"SLURM run ID: (\S+)", _read(work)):
            _run(["scancel", "--name", run_id])
    return proc


def _read(work):
    logs = sorted((work / ".snakemake" / "log").glob("*.snakemake.log"))
    return "\n".join(p.read_text() for p in logs)


@pytest.fixture(scope="module")
def slurm_run(slurm, repo, data_root, workflow_run, tmp_path_factory):
    """(working dir, snakemake output, SLURM run id, profile used) of the DAG run through SLURM."""
    work = copy_run(workflow_run, tmp_path_factory.mktemp("slurm") / "work")
    for target in TARGETS:  # the compared outputs must come from the SLURM jobs, not the copy
        (work / target).unlink()
    cfg = small_config(repo, data_root)
    # only TTE in START's fine-tuning job: the job fine-tunes every task of its run, and TTE's
    # table equals the base run's (whose job also ran the other tasks) byte for byte
    # (trajzoo.evaluation.evaluate_run restores the RNG state and copies the model per task)
    cfg["cities"]["porto"]["tasks"] = ["tte"]
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    profile = profile_for(repo, work, node_memory_mb())
    proc = snakemake_slurm(repo, work, profile, *TARGETS, *FROM_INGEST, "--configfile", str(work / "config.yaml"))
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted(work.rglob("*.log"))
                         if ".snakemake/log" not in str(p))
        killed = " (killed by timeout)" if proc.returncode in (-9, 137) else ""
        pytest.fail(f"snakemake --profile slurm failed ({proc.returncode}){killed}:\n{out[-5000:]}\n{logs[-8000:]}")
    run_ids = re.findall(r"SLURM run ID: (\S+)", out)
    assert len(run_ids) == 1, run_ids
    return work, out, run_ids[0], profile


def planned_jobs(out: str) -> collections.Counter:
    """The 'Job stats' table Snakemake prints before running: rule -> job count."""
    table = out.split("Job stats:", 1)[1]
    counts = collections.Counter()
    for line in table.splitlines()[3:]:
        parts = line.split()
        if not parts or parts[0] == "total":
            break
        counts[rule_family(parts[0])] += int(parts[1])
    return counts


def test_every_job_ran_under_slurm_and_completed(slurm_run):
    work, out, run_id, _ = slurm_run
    # the plugin names every job after the run id and comments it with rule and wildcards
    acct = _run(["sacct", "-X", "-n", "-P", "--name", run_id, "--starttime", "now-1days",
                 "-o", "JobIDRaw,Comment,State,ExitCode,Partition,AllocCPUS"])
    assert acct.returncode == 0, acct.stderr
    rows = [line.split("|") for line in acct.stdout.splitlines() if line.strip()]
    assert rows, f"sacct knows no job named {run_id}"
    rules = collections.Counter()
    for job_id, comment, state, exit_code, partition, cpus in rows:
        assert state == "COMPLETED" and exit_code == "0:0", (job_id, comment, state, exit_code)
        m = re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", comment)
        assert m, comment
        rules[rule_family(m[1])] += 1
    planned = planned_jobs(out)
    assert rules == planned, f"sacct: {dict(rules)}, planned: {dict(planned)}"
    assert {"ingest_trajectories", "map_match_chunk", "pretrain", "evaluate"} <= set(rules)
    # each SLURM job ran the rule on the cluster, not in this process
    assert len(set(re.findall(r"has been submitted with SLURM jobid (\d+)", out))) == sum(planned.values())


def test_sbatch_calls_carry_the_profiles_resources(slurm_run, repo):
    work, out, _, profile = slurm_run
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    calls = re.findall(r"sbatch call: (sbatch .*?) --wrap=", out)
    assert len(calls) == sum(planned_jobs(out).values())
    for call in calls:
        rule = rule_family(re.search(r"--comment rule_(\w+?)(?:_wildcards_\S*)?\s", call)[1])
        res = settings["set-resources"][rule]
        assert f"--mem {res['mem_mb']}" in call and f"-t {res['runtime']}" in call, call
        threads = settings["set-threads"].get(rule, 1)
        assert f"--cpus-per-task={threads}" in call, call
        assert "--gpus" not in call, f"device cpu must not ask for a GPU: {call}"


def test_weights_and_result_equal_the_local_run(slurm_run, workflow_run):
    work = slurm_run[0]
    import torch

    a = torch.load(work / TARGETS[0], weights_only=True)["state_dict"]
    b = torch.load(workflow_run / TARGETS[0], weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (work / TARGETS[1]).read_bytes() == (workflow_run / TARGETS[1]).read_bytes()


def test_cuda_config_asks_slurm_for_a_gpu(slurm_run, repo):
    """With device cuda the plugin submits the pretraining job with --gpus=1 (and --gpus=<model>:1
    with `--set-resources pretrain:gpu_model=a100`). This cluster has no GPU, so sbatch refuses
    the job: the refusal and the call it prints are the evidence."""
    work, _, _, profile = slurm_run
    if "gpu" in _run(["scontrol", "show", "node", "-o"]).stdout.split("Gres=", 1)[-1].split()[0]:
        pytest.skip("this cluster has GPUs: the job would run instead of being refused")
    encoder = "results/models/start/full/in-porto/seed0/model.pt"
    for extra, flag in (([], "--gpus=1"), (["--set-resources", "pretrain:gpu_model=a100"], "--gpus=a100:1")):
        proc = snakemake_slurm(repo, work, profile, encoder, "--configfile", str(work / "config.yaml"),
                               "--config", "device=cuda", *extra, kill_after=120)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, "sbatch accepted a GPU job on a cluster without GPUs"
        calls = re.findall(r"sbatch call: (sbatch .*?) --wrap=", out)
        assert len(calls) == 1 and "rule_pretrain" in calls[0], calls
        assert f" {flag}" in calls[0], calls[0]
        assert "Invalid generic resource" in out or "gres" in out.lower(), out[-3000:]
