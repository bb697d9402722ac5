"""Start-up share of the fine-tuning jobs (rule ``evaluate``) of a finished pipeline run.

For each evaluate job: total wall time ``s`` from Snakemake's ``benchmark:`` file
(``benchmarks/<city>/eval/.../<task>.tsv``), and the fine-tuning time = from the first to the
last line of the job's log (``logs/<city>/eval/.../<task>.log``; the first line is written after
the city's tables and the pretrained encoder are loaded, the last after testing). Start-up =
total - fine-tuning (interpreter, imports, city and encoder loading, writing the outputs).
Target (issue 14): if the start-up share over all jobs is above 1/4, load once per run and
fine-tune its tasks in one job.

Run: ``python benchmarks/benchmark_finetune_startup.py RUN_DIR`` (the directory Snakemake ran in).
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path


def _stamp(line: str) -> datetime | None:
    try:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    except ValueError:
        return None


def job_times(run: Path) -> list[tuple[str, float, float]]:
    """``(job, total s, fine-tuning s)`` of every evaluate job with a benchmark and a log."""
    out = []
    for tsv in sorted((run / "benchmarks").glob("*/eval/**/*.tsv")):
        log = run / "logs" / tsv.relative_to(run / "benchmarks").with_suffix(".log")
        if not log.exists():
            continue
        total = float(tsv.read_text().splitlines()[-1].split("\t")[0])
        stamps = [s for s in (_stamp(l) for l in log.read_text().replace("\r", "\n").splitlines()) if s]
        if len(stamps) < 2:  # fine-tuning not bracketed by two log lines: not measurable this way
            continue
        out.append((str(tsv.relative_to(run / "benchmarks").with_suffix("")), total,
                    (stamps[-1] - stamps[0]).total_seconds()))
    return out


def rows(run: Path) -> list[tuple]:
    """Table rows ``(figure, value, target, ratio)``."""
    jobs = job_times(run)
    if not jobs:
        return [("fine-tuning start-up share", "no evaluate jobs found", "<= 0.25", "")]
    total = sum(j[1] for j in jobs)
    startup = sum(j[1] - j[2] for j in jobs)
    share = startup / total
    return [(f"fine-tuning start-up share ({len(jobs)} evaluate jobs, {total / 60:.0f} min)", f"{share:.2f}",
             "<= 0.25 (else one job per run)", f"{0.25 / share:.2f}"),
            ("fine-tuning start-up per job, mean s", f"{startup / len(jobs):.1f}", "", "")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--jobs", action="store_true", help="also print every job")
    args = ap.parse_args()
    if args.jobs:
        for name, total, ft in job_times(args.run):
            print(f"{name}: total {total:.1f} s, fine-tuning {ft:.1f} s, start-up {total - ft:.1f} s")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchmark_training import print_table

    print_table(rows(args.run))


if __name__ == "__main__":
    main()
