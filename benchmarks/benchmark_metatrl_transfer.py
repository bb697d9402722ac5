"""Does MetaTRL's meta-learning transfer anything? Target pretraining loss from the meta model vs
from scratch, on the real prepared data.

For one seed: the target model (Porto) is initialised; the meta phase (eqs. 1-3, the config's
``models.metatrl.pretrain`` schedule, source San Francisco) starts from a copy of the target's
shared parameters and hands its result back to the target (eq. 3). Two targets then pretrain
with eq. 4 (Adam, ``lr``), same private initialisation, same batches and masks:

* ``meta``: shared parameters from the meta model;
* ``scratch``: shared parameters from their own random initialisation.

After 0, 50, 200 and 1,000 target steps (``--steps``) the script prints the pretraining loss
L^pre (eq. 20) on the Porto validation split (fixed masks), plus the meta model's movement
||theta_meta - theta_init|| over the shared parameters and the wall-clock time of each phase.

Prepare the data once (the Snakemake data stages, in a scratch folder)::

    cd /tmp/mtb && snakemake --snakefile /work/main/Snakefile --directory /tmp/mtb --cores 2 \\
        results/porto/roads/structural.parquet results/sanfrancisco/roads/structural.parquet \\
        results/porto/splits.parquet results/sanfrancisco/splits.parquet

then::

    python benchmarks/benchmark_metatrl_transfer.py --results /tmp/mtb/results --steps 0 50 200 1000

Cost on the 2 shared CPU cores (1,404 Porto train trips, 19,777 segments; 3,700 San Francisco
train trips): the meta phase 2.5-4 min, then 0.35-0.9 s per target step and model, so
``--steps 0 50 200`` runs in about 10 min and ``--steps 0 50 200 1000`` in about 30 min.

The figures are what they are: nothing here is tuned to them.
"""
from __future__ import annotations

import argparse
import copy
import logging
import tempfile
import time
from pathlib import Path

import torch
import yaml

from trajzoo.data.city import iterate_batches, trip_rows
from trajzoo.data.prepared import load_prepared
from trajzoo.training.engine import Trainer
from trajzoo.training.loop import RunContext, seed_everything
from trajzoo_metatrl.meta_learning import (PretrainSchedule, _step_loss, evaluate_loss, meta_pretrain,
                                           shared_distance)
from trajzoo_metatrl.model import MetaTRLConfig
from trajzoo_metatrl.parameters import shared_state_dict

ROOT = Path(__file__).resolve().parents[1]


def load(results: Path, name: str, timezone: str):
    """The road view of one prepared city under ``results/<name>``."""
    base = results / name
    paths = {"matched": base / "matched.parquet", "splits": base / "splits.parquet",
             "structural": base / "roads/structural.parquet", "attributes": base / "roads/attributes.parquet",
             "transitions": base / "roads/transitions.parquet"}
    return load_prepared(name, timezone, {"roads"}, paths).require("road")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, default=Path("/tmp/mtb/results"), help="folder with <city>/ outputs")
    ap.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    ap.add_argument("--target", default="porto")
    ap.add_argument("--source", default="sanfrancisco")
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 50, 200, 1000], help="target steps to report at")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-trips", type=int, default=None, help="cap on validation trips (default all)")
    ap.add_argument("--schedule", type=yaml.safe_load, default={},
                    help="YAML overrides of models.metatrl.pretrain, e.g. '{meta_epochs: 1}'")
    args = ap.parse_args()

    cfg = yaml.safe_load(args.config.read_text())
    section = cfg["models"]["metatrl"]
    config = MetaTRLConfig.from_dict(section.get("hparams", {}))
    schedule = PretrainSchedule.from_dict({**section.get("pretrain", {}), **args.schedule})
    zones = {c: v["timezone"] for c, v in cfg["cities"].items()}
    torch.set_num_threads(2)
    target = load(args.results, args.target, zones[args.target])
    source = load(args.results, args.source, zones[args.source])
    print(f"target {args.target}: {target.graph.num_segments} segments, "
          f"{target.trips['split'].value_counts().to_dict()}")
    print(f"source {args.source}: {source.graph.num_segments} segments, "
          f"{source.trips['split'].value_counts().to_dict()}")
    print(f"schedule: {schedule.to_dict()}")

    seed_everything(args.seed)
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(device, args.seed, Path(tmp), logging.getLogger("benchmark"))
        t0 = time.perf_counter()
        # target_epochs=0: the target right after eq. 3, before any target step
        result = meta_pretrain(target, [source], config, PretrainSchedule.from_dict(
            {**schedule.to_dict(), "target_epochs": 0}), ctx)
        meta_seconds = time.perf_counter() - t0
    meta_model = result.target
    scratch = copy.deepcopy(meta_model)
    with torch.no_grad():  # same private init; shared back to the initialisation
        for name, p in scratch.named_parameters():
            if name in result.initial_shared:
                p.copy_(result.initial_shared[name])
    movement = shared_distance(shared_state_dict(meta_model), result.initial_shared)
    init_norm = float(torch.sqrt(sum((v.double() ** 2).sum() for v in result.initial_shared.values())))
    source_trips = schedule.meta_epochs * schedule.episodes * schedule.source_steps * schedule.batch_size
    print(f"meta phase: {meta_seconds:.1f} s; {schedule.meta_epochs * schedule.episodes} meta steps; "
          f"{source_trips} source train trip-visits ({source_trips / max(len(source.split('train')), 1):.2f} "
          f"passes); movement ||theta_meta - theta_init|| = {movement:.4f} "
          f"(||theta_init|| = {init_norm:.4f}, relative {movement / init_norm:.4f})")
    for row in ctx.history:
        print(f"  {row['phase']} epoch {row['epoch']}: inner train loss {row['train_loss']:.4f}, "
              f"query (test) loss {row['val_loss']:.4f}, movement {row['meta_movement']:.4f}")

    train_rows = trip_rows(target.split("train"))
    val_rows = trip_rows(target.split("val"))[: args.val_trips]
    graph = target.graph.to(device)
    steps = sorted(set(args.steps))
    table: dict[str, dict[int, float]] = {}
    timing: dict[str, float] = {}
    for label, model in (("meta", meta_model), ("scratch", scratch)):
        gen = torch.Generator().manual_seed(args.seed + 1)  # same batches and masks for both
        stream = (b for _ in iter(int, 1)
                  for _, b in iterate_batches(train_rows, schedule.batch_size, shuffle=True, generator=gen))
        trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=schedule.lr), _step_loss(graph, gen, device))
        done, t0 = 0, time.perf_counter()
        table[label] = {}
        for k in steps:
            if k > done:
                trainer.run_steps(lambda: stream, max_steps=k - done)
                done = k
            table[label][k] = evaluate_loss(model, val_rows, graph, schedule.batch_size, args.seed + 7, device)
            print(f"  {label}: {k} steps, val loss {table[label][k]:.4f}", flush=True)
        timing[label] = time.perf_counter() - t0

    print(f"\nPorto validation pretraining loss L^pre (eq. 20, {len(val_rows)} trips, fixed masks), seed {args.seed}")
    print(f"{'target steps':>12} | {'from meta':>10} | {'from scratch':>12} | {'meta - scratch':>14}")
    for k in steps:
        a, b = table["meta"][k], table["scratch"][k]
        print(f"{k:>12} | {a:>10.4f} | {b:>12.4f} | {a - b:>+14.4f}")
    print(f"meta movement ||theta_meta - theta_init|| = {movement:.4f} (relative {movement / init_norm:.4f}); "
          f"meta phase {meta_seconds:.0f} s; target runs {timing['meta']:.0f} s + {timing['scratch']:.0f} s")


if __name__ == "__main__":
    main()
