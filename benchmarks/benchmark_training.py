"""Pretraining throughput and peak memory of trajzoo's START and MetaTRL at START's reference size.

Reference (issue 14): the original START implementation on these 2-core machines, batch 64,
sequence 64, d = 128, 6 layers, 8 heads, its road GAT over all Porto segments every step:
9.5 trajectories/s, 6.9 GB peak RSS. Target: >= 3x the trajectories/s (28.5) with <= 1/4 of the
peak RSS (1.725 GB).

Setup: the Porto road graph and matched trips of the pipeline (``results/porto/roads/*.parquet``,
``results/porto/matched.parquet``, ``results/porto/splits.parquet``; build them with
``snakemake --cores 2 results/porto/roads/transitions.parquet``); trips with at least 64
segments truncated to 64, so every batch is 64 x 64 (the longest case). d = 128, 6 Transformer
layers, 8 heads, feed-forward 512, dropout 0.1; START's TPE-GAT 3 layers x 8 heads (START's
published depth), MetaTRL's road encoder 2 layers (its default). AdamW, 2 torch threads. Each
measurement runs in its own subprocess (clean peak RSS, ``ru_maxrss`` of the child, which
includes loading the city): 2 warm-up steps, then ``--steps`` timed steps. The ``whole graph``
rows run the same model with the road encoder over every segment each step (what the subgraph
replaces), for comparison. Both are also measured with ``activation_checkpointing`` (each
Transformer layer's activations recomputed in the backward pass from its input and its dropout masks drawn
beforehand: the same weights bit for bit, less memory, about one more forward pass of the
layers per step). On a shared, loaded machine the wall-clock rate understates the
speed, so the table also gives 2 x trajectories per CPU-second of the process (what 2 idle
cores would give if the step parallelised perfectly over both threads: an upper estimate).

Run from the repository root: ``python benchmarks/benchmark_training.py`` (about 3 minutes).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE_TRAJ_PER_S = 9.5
REFERENCE_PEAK_GB = 6.9
SEQ, BATCH, D, LAYERS, HEADS = 64, 64, 128, 6, 8


def _worker(model_name: str, whole_graph: bool, steps: int, city_dir: Path, checkpointing: bool = False) -> dict:
    import numpy as np
    import torch

    from trajzoo.data.city import collate, load_city, trip_rows

    torch.set_num_threads(2)
    torch.manual_seed(0)
    city = load_city("porto", "Europe/Lisbon", city_dir / "matched.parquet", city_dir / "splits.parquet",
                     city_dir / "roads/structural.parquet", city_dir / "roads/attributes.parquet",
                     city_dir / "roads/transitions.parquet")
    graph = city.graph
    n, f_u = graph.num_segments, int(graph.attributes.shape[1])
    trips = city.trips[city.trips["roads"].map(len) >= SEQ].reset_index(drop=True)
    rows = trip_rows(trips, np.full(len(trips), SEQ))
    if model_name == "start":
        from trajzoo_baselines.start.config import STARTConfig
        from trajzoo_baselines.start.objective import STARTPretrainer

        cfg = STARTConfig(d_model=D, layers=LAYERS, heads=HEADS, ffn_dim=4 * D, dropout=0.1, gat_layers=3,
                          gat_heads=8, activation_checkpointing=checkpointing)
        model = STARTPretrainer(n, f_u, cfg)
        model.fit_to_trips(trip_rows(city.split("train")))
        road = model.encoder.road_encoder
    else:
        from trajzoo_metatrl.model import MetaTRLConfig
        from trajzoo_metatrl.objective import MetaTRLPretrainer

        cfg = MetaTRLConfig(d_model=D, layers=LAYERS, heads=HEADS, ffn_dim=4 * D, dropout=0.1, gat_layers=2,
                            activation_checkpointing=checkpointing)
        model = MetaTRLPretrainer(n, f_u, cfg)
        road = model.encoder.road_encoder
    if whole_graph:  # the road encoder over every segment, the rows asked for taken afterwards
        encode = road._encode
        road._encode = lambda g, s: encode(g, None) if s is None else encode(g, None)[s]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    model.train()
    order = torch.randperm(len(rows), generator=gen).tolist()

    def batch(k: int):
        return collate([rows[order[(k * BATCH + i) % len(rows)]] for i in range(BATCH)])

    def step(k: int) -> None:
        loss, _ = model.loss(batch(k), graph, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for k in range(2):
        step(k)
    t0, c0 = time.perf_counter(), time.process_time()
    for k in range(2, 2 + steps):
        step(k)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"model": model_name, "whole_graph": whole_graph, "checkpointing": checkpointing, "segments": n,
            "trips_ge_64": len(trips),
            "traj_per_s": steps * BATCH / elapsed,
            "traj_per_cpu_s": steps * BATCH / cpu, "peak_rss_gb": peak_kb * 1024 / 1e9}


def measure(model_name: str, whole_graph: bool, steps: int, city_dir: Path, checkpointing: bool = False) -> dict:
    """Run :func:`_worker` in a fresh Python process and return its figures."""
    cmd = [sys.executable, __file__, "--worker", model_name, "--steps", str(steps), "--city-dir", str(city_dir)]
    if whole_graph:
        cmd.append("--whole-graph")
    if checkpointing:
        cmd.append("--checkpointing")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rows(steps: int = 8, city_dir: Path = REPO / "results/porto", whole_graph: bool = True) -> list[tuple]:
    """Table rows ``(figure, value, target, ratio)``; ratio >= 1 means the target is met."""
    out = []
    runs = [("start", False, False), ("start", False, True), ("metatrl", False, False), ("metatrl", False, True)]
    if whole_graph:
        runs += [("start", True, False), ("metatrl", True, False)]
    for model_name, whole, checkpointing in runs:
        m = measure(model_name, whole, steps, city_dir, checkpointing)
        how = ('whole graph' if whole else 'subgraph') + (' + activation checkpointing' if checkpointing else '')
        tag = f"train {model_name} ({how}, {m['segments']} segments)"
        if whole:
            out.append((f"{tag} traj/s", f"{m['traj_per_s']:.1f}", "(comparison)", ""))
            out.append((f"{tag} peak RSS GB", f"{m['peak_rss_gb']:.2f}", "(comparison)", ""))
        else:
            target_tps = 3 * REFERENCE_TRAJ_PER_S
            target_gb = REFERENCE_PEAK_GB / 4
            out.append((f"{tag} traj/s", f"{m['traj_per_s']:.1f}", f">= {target_tps:.1f}",
                        f"{m['traj_per_s'] / target_tps:.2f}"))
            out.append((f"{tag} peak RSS GB", f"{m['peak_rss_gb']:.2f}", f"<= {target_gb:.3f}",
                        f"{target_gb / m['peak_rss_gb']:.2f}"))
            # load-independent estimate: 2 cores' worth of the measured CPU time per trajectory
            est = 2 * m["traj_per_cpu_s"]
            out.append((f"{tag} traj/s from CPU time x 2 cores", f"{est:.1f}", f">= {target_tps:.1f}",
                        f"{est / target_tps:.2f}"))
    return out


def print_table(table: list[tuple]) -> None:
    """Print ``(figure, value, target, ratio)`` rows as one aligned table."""
    header = ("figure", "value", "target", "ratio (>= 1 met)")
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(4)]
    for r in [header, *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=["start", "metatrl"])
    ap.add_argument("--whole-graph", action="store_true")
    ap.add_argument("--checkpointing", action="store_true", help="the model with activation_checkpointing")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--city-dir", type=Path, default=REPO / "results/porto")
    ap.add_argument("--no-whole-graph", action="store_true", help="skip the whole-graph comparison rows")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.whole_graph, args.steps, args.city_dir, args.checkpointing)))
        return
    print_table(rows(args.steps, args.city_dir, not args.no_whole_graph))


if __name__ == "__main__":
    main()
