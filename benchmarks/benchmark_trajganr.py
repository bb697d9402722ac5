"""Cold wall time of TrajGANR's default target and the time of each of its jobs; prints figures.

    python benchmarks/benchmark_trajganr.py [--city porto] [--cores 2] [--keep DIR]

Runs ``snakemake --cores N results/<city>/trajganr.csv`` with the default config in a fresh
working directory (nothing reused: ingest, road network, points, task locations, TransferTraj's
in-city pretraining for the foundation-model row, every TrajGANR variant's pretraining, features
and the four task heads), then prints the wall time, the sum of the jobs' wall and CPU times per
rule (from the rules' benchmark files) and the load average of the machine, since a shared machine
makes the wall time an upper bound. Target: <= 20 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def rule_times(work: Path) -> pd.DataFrame:
    """Per rule: jobs, summed wall seconds and CPU seconds of the benchmark files under ``work``."""
    rows = []
    for f in (work / "benchmarks").rglob("*.tsv"):
        t = pd.read_csv(f, sep="\t")
        rel = f.relative_to(work / "benchmarks")
        rule = rel.stem if rel.parent.name in ("porto", "sanfrancisco") else rel.parts[-1].removesuffix(".tsv")
        if "models" in rel.parts:
            rule = f"pretrain:{rel.parts[1]}/{rel.parts[2]}"
        elif "features" in rel.parts:
            rule = "location_features"
        elif "eval" in rel.parts:
            rule = "evaluate"
        rows.append({"rule": rule, "s": float(t["s"].iloc[-1]), "cpu_time": float(t.get("cpu_time", [0]).iloc[-1])})
    df = pd.DataFrame(rows)
    return df.groupby("rule").agg(jobs=("s", "size"), wall_s=("s", "sum"), cpu_s=("cpu_time", "sum")).sort_values(
        "wall_s", ascending=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--city", default="porto")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="working directory to use and keep (default: a temp dir)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="trajganr-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(work), "--cores", str(args.cores), f"results/{args.city}/trajganr.csv", "--configfile",
                           str(REPO / "config.yaml"), "--config", f"data_root={REPO.parent / 'shared' / 'data'}"],
                          capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
        sys.exit(proc.returncode)
    print(f"cold results/{args.city}/trajganr.csv on {args.cores} cores: {wall / 60:.1f} min wall "
          f"(load average at start {load0[0]:.1f}, at end {os.getloadavg()[0]:.1f}; target 20 min)")
    print(rule_times(work).to_string())
    print(pd.read_csv(work / f"results/{args.city}/trajganr.csv").pivot_table(
        index="variant", columns=["task", "metric"], values="value").round(3).to_string())


if __name__ == "__main__":
    main()
