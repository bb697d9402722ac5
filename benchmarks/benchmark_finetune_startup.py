"""Start-up share of the fine-tuning jobs (rules ``evaluate_<tasks>``) of a finished pipeline run.

Since issue 14 one job per run (target city, model, variant, experiment, seed) loads the city and
the encoder once and fine-tunes all the run's tasks. For each such job:

- total wall time ``s`` from Snakemake's ``benchmark:`` file
  ``benchmarks/<city>/eval/<model>/<variant>/<experiment>/seed<k>/finetune.tsv``;
- fine-tuning time = the sum over its tasks of the seconds the job's run log
  ``logs/.../seed<k>/finetune.log`` reports as ``<task>: fine-tuned and scored in S s``
  (trajzoo.evaluation.evaluate_run: from the task's start, after the shared loading, through
  restoring the RNG state, copying the loaded model, fine-tuning and scoring on test; the
  writing of its tables is not included);
- start-up = total - fine-tuning: interpreter, imports, loading the city's tables and the
  pretrained encoder (once per job), the weights digest, writing each task's tables.

The share is sum(start-up) / sum(total) over all jobs. Runs made before the change (one job per
(run, task): ``benchmarks/.../seed<k>/<task>.tsv`` beside ``logs/.../seed<k>/<task>.log``) are
measured as before: fine-tuning = from the first to the last time-stamped line of the task's log
(the first is written after the city and the encoder are loaded, the last after testing).
Target (issue 14): a start-up share of at most 1/4.

Run: ``python benchmarks/benchmark_finetune_startup.py RUN_DIR [--jobs]`` (the directory Snakemake
ran in).
"""
from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime
from pathlib import Path

SCORED = re.compile(r": (\w+): fine-tuned and scored in ([0-9.]+) s")


def _stamp(line: str) -> datetime | None:
    try:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    except ValueError:
        return None


def _total(tsv: Path) -> float:
    return float(tsv.read_text().splitlines()[-1].split("\t")[0])


def job_times(run: Path) -> list[tuple[str, float, float, int]]:
    """``(job, total s, fine-tuning s, tasks)`` of every fine-tuning job with a benchmark and a log."""
    out = []
    for tsv in sorted((run / "benchmarks").glob("*/eval/**/*.tsv")):
        rel = tsv.relative_to(run / "benchmarks")
        log = run / "logs" / rel.with_suffix(".log")
        if not log.exists():
            continue
        text = log.read_text(errors="replace").replace("\r", "\n")
        if tsv.name == "finetune.tsv":  # one job per run
            scored = SCORED.findall(text)
            if not scored:
                continue
            out.append((str(rel.parent), _total(tsv), sum(float(s) for _, s in scored), len(scored)))
            continue
        # before: one job per (run, task)
        stamps = [s for s in (_stamp(line) for line in text.splitlines()) if s]
        if len(stamps) < 2:  # fine-tuning not bracketed by two log lines: not measurable this way
            continue
        out.append((str(rel.with_suffix("")), _total(tsv), (stamps[-1] - stamps[0]).total_seconds(), 1))
    return out


def rows(run: Path) -> list[tuple]:
    """Table rows ``(figure, value, target, ratio)``."""
    jobs = job_times(run)
    if not jobs:
        return [("fine-tuning start-up share", "no fine-tuning jobs found", "<= 0.25", "")]
    total = sum(j[1] for j in jobs)
    startup = sum(j[1] - j[2] for j in jobs)
    tasks = sum(j[3] for j in jobs)
    share = startup / total
    return [(f"fine-tuning start-up share ({len(jobs)} jobs, {tasks} tasks, {total / 60:.0f} min)", f"{share:.2f}",
             "<= 0.25", f"{0.25 / share:.2f}" if share > 0 else "inf"),
            ("fine-tuning start-up per job, mean s", f"{startup / len(jobs):.1f}", "", ""),
            ("fine-tuning start-up per task, mean s", f"{startup / tasks:.1f}", "", ""),
            ("fine-tuning jobs' wall time per task, mean s", f"{total / tasks:.1f}", "", "")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--jobs", action="store_true", help="also print every job")
    args = ap.parse_args()
    if args.jobs:
        for name, total, ft, n in job_times(args.run):
            print(f"{name}: {n} task(s), total {total:.1f} s, fine-tuning {ft:.1f} s, start-up {total - ft:.1f} s")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchmark_training import print_table

    print_table(rows(args.run))


if __name__ == "__main__":
    main()
