"""All performance targets of issue 14 in one table: each figure, its target and the ratio
(>= 1 means met), measured side by side in one run.

1. Training (:mod:`benchmark_training`): trajzoo's START and MetaTRL pretraining at START's
   reference size on the Porto road graph, trajectories/s and peak RSS, each in a subprocess,
   against 3x the reference START's 9.5 trajectories/s and 1/4 of its 6.9 GB.
2. Map matching (:func:`benchmark_pipeline.bench_map_matching`): the stage's points/s over a
   bare fastmm loop's, both with ``--workers`` processes, the same UBODT file, trips and fastmm
   configuration, per city with ``results/<city>/trips.parquet``; target >= 0.9x.
3. With ``--run-dir``: the start-up share of the fine-tuning jobs of a finished run
   (:mod:`benchmark_finetune_startup`); target <= 1/4.
4. With ``--streaming``: ingest and map matching on the real Porto sample replicated 10x and
   100x (:mod:`benchmark_streaming`; about 15 minutes): points/s and peak RSS per size, its growth (target
   <= 1.10x), and the projected wall time of the full Porto train.csv on 8 cores (target <= 10 min).

Needs the pipeline's outputs for the cities (``snakemake --cores 2
results/porto/roads/transitions.parquet results/sanfrancisco/matched.parquet``; map matching
needs only ``results/<city>/trips.parquet`` and ``results/<city>/ubodt``). Run from the
repository root: ``python benchmarks/run_all.py [--cities sanfrancisco porto] [--steps 6]``.
The machine's load is printed with the table: these are wall-clock figures.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchmark_pipeline  # noqa: E402
import benchmark_training  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cities", nargs="*", default=["sanfrancisco", "porto"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=1, help="map matching: alternate bare/stage runs, keep the best")
    ap.add_argument("--no-training", action="store_true")
    ap.add_argument("--run-dir", type=Path, help="a finished pipeline run: adds the fine-tuning start-up share")
    ap.add_argument("--no-whole-graph", action="store_true", help="skip the whole-graph training comparison rows")
    ap.add_argument("--streaming", action="store_true",
                    help="add the full-size rows (benchmark_streaming: replicated Porto sample, ~15 min)")
    ap.add_argument("--streaming-sizes", type=int, nargs=2, default=[10, 100], help="replication factors")
    ap.add_argument("--streaming-roads-dir", type=Path, help="a results/porto with roads/ and ubodt/ to reuse")
    args = ap.parse_args()
    repo = HERE.parent
    table: list[tuple] = []
    load_before = os.getloadavg()[0]
    if not args.no_training:
        table += benchmark_training.rows(args.steps, repo / "results/porto", not args.no_whole_graph)
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    for city in args.cities:
        if not (repo / "results" / city / "trips.parquet").exists():
            table.append((f"map matching {city}", "not run", ">= 0.90x bare", "missing results"))
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            m = benchmark_pipeline.bench_map_matching(city, cfg, args.workers, args.repeats)
        side = f"{m['workers']} process(es), {m['trips']} trips / {m['points']} fixes, {m['ubodt']}"
        table.append((f"map matching {city} stage points/s ({side})", f"{m['stage_points_per_s']:,.0f}", "", ""))
        table.append((f"map matching {city} bare fastmm loop points/s (same)", f"{m['bare_points_per_s']:,.0f}", "", ""))
        table.append((f"map matching {city} bare fastmm, matching only (no setup)",
                      f"{m['bare_match_points_per_s']:,.0f}", "", ""))
        table.append((f"map matching {city} bare fastmm + reading each matched route (road ids, entry times)",
                      f"{m['bare_read_points_per_s']:,.0f}", "", ""))
        table.append((f"map matching {city} stage / bare", f"{m['ratio']:.2f}x", ">= 0.90x",
                      f"{m['ratio'] / 0.9:.2f}"))
        table.append((f"map matching {city} stage / (bare + route read): trajzoo's own share", f"{m['ratio_read']:.2f}x",
                      "", ""))
    if args.run_dir is not None:
        import benchmark_finetune_startup

        table += benchmark_finetune_startup.rows(args.run_dir)
    if args.streaming:
        import benchmark_streaming

        table += benchmark_streaming.rows(sorted(args.streaming_sizes), args.streaming_roads_dir)
    print(f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    benchmark_training.print_table(table)


if __name__ == "__main__":
    main()
