"""Estimate the wall time a finished Snakemake run would take on an idle machine with N cores,
from the CPU time its jobs used (Snakemake's ``benchmark:`` files) and the DAG it ran.

Why: on a machine shared with other work, a run's wall time says little about an idle
machine's (a job waits for the cores), while its jobs' CPU seconds barely change. This script
replays the run's DAG on ``--cores`` idle cores: every job lasts ``cpu_time / threads`` seconds
(its benchmark's ``cpu_time``, which covers the job's process tree, over the threads the
profile gave it; a job without a benchmark file lasts its logged wall time or 1 s), and jobs
start greedily, in the log's order, as soon as their inputs exist and enough cores are free
(Snakemake's local scheduler with ``--cores N``). It prints the estimate next to two bounds:
total CPU seconds / cores (no schedule can beat it) and the longest dependency chain.

Caveat: a multi-threaded torch job on contended cores burns CPU time spinning (its OpenMP
threads wait actively for a descheduled peer): measured there, its ``cpu_time`` can be many
times its idle work (a SMARTraj2 pretraining: 636 CPU-s at nice 19 under load, 26 CPU-s idle).
The CPU-time replay is then pessimistic, not a lower bound, for such jobs.

This is an estimate, not a measurement: it assumes perfect thread scaling and ignores I/O
waits, so an idle run can be slower. It therefore also prints the replay with each job's
measured wall time, which is an upper bound when the jobs ran on a loaded machine. Use it only where an idle measurement is impossible, and
say so.

Usage (from the repository root)::

    python benchmarks/estimate_idle_wall.py RUN_DIR [--cores 2] [--log PATH]

``RUN_DIR`` is the run's working directory (``.snakemake/log`` and ``benchmarks/`` in it); by
default the newest Snakemake log there is read.

Raises:
    SystemExit: no Snakemake log, or a job's benchmark file has no ``cpu_time`` column.
"""
from __future__ import annotations

import argparse
import csv
import heapq
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

JOB_START = re.compile(r"^(local)?rule (\S+):$")
FIELD = re.compile(r"^    (input|output|benchmark|threads|jobid): (.*)$")


@dataclass
class Job:
    """One job of the log: its rule, files, threads and (once read) its duration in seconds."""

    jobid: int
    rule: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    benchmark: str | None = None
    threads: int = 1
    cpu_s: float = 0.0
    wall_s: float = 0.0


def parse_log(text: str) -> list[Job]:
    """The jobs a Snakemake log planned and ran, in the order it printed them.

    Reads each line ``rule NAME:`` (or ``localrule NAME:``) and the indented ``input:``,
    ``output:``, ``benchmark:``, ``threads:`` and ``jobid:`` lines under it (Snakemake 8/9 log
    format); a job printed twice counts once."""
    jobs: dict[int, Job] = {}
    blocks: list[tuple[str, dict]] = []
    for line in text.splitlines():
        m = JOB_START.match(line)
        if m:
            blocks.append((m.group(2), {}))
        elif blocks and line.startswith("    "):
            f = FIELD.match(line)
            if f:
                blocks[-1][1].setdefault(f.group(1), f.group(2))
    for rule, fields in blocks:
        if "jobid" not in fields:
            continue
        split = lambda key: [x.strip() for x in fields.get(key, "").split(",") if x.strip()]  # noqa: E731
        jid = int(fields["jobid"])
        jobs.setdefault(jid, Job(jobid=jid, rule=rule, inputs=split("input"), outputs=split("output"),
                                 benchmark=fields.get("benchmark"), threads=int(fields.get("threads", 1))))
    return list(jobs.values())


def read_benchmark(path: Path) -> tuple[float, float]:
    """``(wall seconds, cpu seconds)`` of the last row of a Snakemake benchmark TSV."""
    with path.open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or "cpu_time" not in rows[-1]:
        raise SystemExit(f"{path}: no cpu_time column (is it a Snakemake benchmark file?)")
    return float(rows[-1]["s"]), float(rows[-1]["cpu_time"])


def simulate(jobs: list[Job], cores: int) -> float:
    """Wall seconds of the greedy schedule of ``jobs`` on ``cores`` idle cores (see module doc)."""
    producer = {out: j.jobid for j in jobs for out in j.outputs}
    deps = {j.jobid: {producer[i] for i in j.inputs if i in producer and producer[i] != j.jobid} for j in jobs}
    by_id = {j.jobid: j for j in jobs}
    done: set[int] = set()
    running: list[tuple[float, int]] = []
    waiting = [j.jobid for j in jobs]
    now, free = 0.0, cores
    while waiting or running:
        for jid in list(waiting):
            job = by_id[jid]
            need = min(job.threads, cores)
            if deps[jid] <= done and need <= free:
                free -= need
                heapq.heappush(running, (now + job.cpu_s / need, jid))
                waiting.remove(jid)
        if not running:
            raise SystemExit("the DAG has a job whose inputs no job produces and that never starts")
        now, jid = heapq.heappop(running)
        done.add(jid)
        free += min(by_id[jid].threads, cores)
    return now


def critical_path(jobs: list[Job], cores: int) -> float:
    """Seconds of the longest dependency chain, each job at ``cpu_time / threads``."""
    producer = {out: j.jobid for j in jobs for out in j.outputs}
    by_id = {j.jobid: j for j in jobs}
    memo: dict[int, float] = {}

    def finish(jid: int) -> float:
        if jid not in memo:
            job = by_id[jid]
            before = [finish(producer[i]) for i in job.inputs if i in producer and producer[i] != jid]
            memo[jid] = max(before, default=0.0) + job.cpu_s / min(job.threads, cores)
        return memo[jid]

    return max((finish(j.jobid) for j in jobs), default=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--log", type=Path, help="a Snakemake log (default: the newest in RUN_DIR/.snakemake/log)")
    args = ap.parse_args()
    log = args.log or max((args.run_dir / ".snakemake" / "log").glob("*.snakemake.log"), default=None,
                          key=lambda p: p.stat().st_mtime)
    if log is None or not Path(log).exists():
        raise SystemExit(f"no Snakemake log in {args.run_dir}/.snakemake/log")
    jobs = parse_log(Path(log).read_text())
    missing = 0
    for job in jobs:
        bench = args.run_dir / job.benchmark if job.benchmark else None
        if bench is not None and bench.exists():
            job.wall_s, job.cpu_s = read_benchmark(bench)
        else:
            missing += 1
            job.cpu_s = job.wall_s = 1.0
    total_cpu = sum(j.cpu_s for j in jobs)
    est = simulate(jobs, args.cores)
    # the same replay with each job's logged wall time (under load: an upper bound of idle)
    cpu = [j.cpu_s for j in jobs]
    for j in jobs:
        j.cpu_s = j.wall_s * min(j.threads, args.cores)
    est_wall = simulate(jobs, args.cores)
    for j, c in zip(jobs, cpu):
        j.cpu_s = c
    by_rule: dict[str, list[float]] = {}
    for j in jobs:
        by_rule.setdefault(j.rule, []).append(j.cpu_s)
    print(f"run {args.run_dir} (log {Path(log).name}): {len(jobs)} jobs, {missing} without a benchmark file (1 s each)")
    print(f"{'rule':<24}{'jobs':>6}{'cpu s':>10}")
    for rule, cpu in sorted(by_rule.items(), key=lambda kv: -sum(kv[1])):
        print(f"{rule:<24}{len(cpu):>6}{sum(cpu):>10.0f}")
    print(f"total CPU seconds: {total_cpu:.0f}; / {args.cores} cores = {total_cpu / args.cores / 60:.1f} min (a lower bound if measured on uncontended cores)")
    print(f"longest dependency chain: {critical_path(jobs, args.cores) / 60:.1f} min")
    print(f"estimated idle wall on {args.cores} cores (greedy replay of the DAG, jobs at cpu_time / threads): "
          f"{est / 60:.1f} min")
    print(f"the same replay with each job's measured wall time (upper bound if measured under load): "
          f"{est_wall / 60:.1f} min")


if __name__ == "__main__":
    sys.exit(main())
