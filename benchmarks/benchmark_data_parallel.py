"""Data-parallel pretraining (trajzoo.training.launch): wall time of K processes against one.

Transformer-MLM (d = 64, 2 layers, 4 heads, dropout 0, global batch 64, 1 epoch; ``--model start``:
START at the same sizes with a 2-layer TPE-GAT; ``--model metatrl``: MetaTRL in-city, the same
sizes with a 2-layer road encoder, 1 target epoch, eq. 4 through ``meta_pretrain``) pretrains on the
Porto train split of the pipeline (``results/porto/{matched,splits}.parquet`` and
``results/porto/roads/*.parquet``; build them with ``snakemake --cores 2
results/porto/roads/transitions.parquet``) through ``pretrain_single_city`` (the engine), once
with 1 process x T torch threads and once with K processes x T // K threads each (same total
cores). Printed per row: the wall time of the training (from the first process's start of
``pretrain_road`` to its end, after a barrier), trajectories/s, and the largest absolute weight
difference from the one-process run (expected float noise only, ~1e-6; the key biases of the
attention, whose gradient is zero in exact arithmetic, are left out, see
tests/baselines/test_baselines_data_parallel.py). The ratio row is the speed-up (1 process's time
/ K processes' time); on a machine shared with other work it understates it. START's weights
differ by up to ~3e-5 after its 22 Adam steps (minute embeddings, feed-forward weights: Adam
rescales the float noise of small gradients), although its per-batch gradients and losses on the
same data agree to ~4e-7 relative (2 processes' summed shares vs 1 process, checked on this split).

Run from the repository root: ``python benchmarks/benchmark_data_parallel.py [--processes 2]
[--threads 2] [--city-dir results/porto] [--model transformer-mlm|start|metatrl]``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HPARAMS = {"d_model": 64, "layers": 2, "heads": 4, "ffn_dim": 128, "dropout": 0.0}
# --model start: the same sizes with START's 2-layer TPE-GAT; its NT-Xent gathers the negatives of
# every process (trajzoo.nn.contrastive.nt_xent_share)
# --model metatrl: in-city (no source city), so eq. 4 alone: 1 target epoch
MODEL_HPARAMS = {"transformer-mlm": HPARAMS, "start": {**HPARAMS, "gat_layers": 2, "gat_heads": 4},
                 "metatrl": {**HPARAMS, "gat_layers": 2}}
SCHEDULE = {"epochs": 1, "batch_size": 64, "lr": 1e-3}
MODEL_SCHEDULE = {"metatrl": {"target_epochs": 1, "batch_size": 64, "lr": 1e-3}}


def _pretrain(city_dir: str, out: str, threads: int, model: str = "transformer-mlm") -> None:
    import torch

    from trajzoo.data.city import load_city
    from trajzoo.registry import get_model
    from trajzoo.training import distributed, launch
    from trajzoo.training.loop import RunContext

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d = Path(city_dir)
    city = load_city("porto", "Europe/Lisbon", d / "matched.parquet", d / "splits.parquet",
                     d / "roads/structural.parquet", d / "roads/attributes.parquet", d / "roads/transitions.parquet")
    ctx = RunContext(torch.device("cpu"), 0, Path(out) / "checkpoints")
    if distributed.world()[1] > 1:
        torch.distributed.barrier()
    t0 = time.perf_counter()
    encoder = get_model(model).pretrain_road(city, [], {"hparams": MODEL_HPARAMS[model],
                                                          "pretrain": MODEL_SCHEDULE.get(model, SCHEDULE)}, ctx)
    if distributed.world()[1] > 1:
        torch.distributed.barrier()
    elapsed = time.perf_counter() - t0
    if launch.is_writer():
        n_train = int((city.trips["split"] == "train").sum())
        torch.save({k: v.detach().clone() for k, v in encoder.state_dict().items()}, Path(out) / "state.pt")
        (Path(out) / "figures.json").write_text(json.dumps({"seconds": elapsed, "train_trips": n_train}))


def run(processes: int, threads: int, city_dir: Path, out: Path, model: str = "transformer-mlm") -> dict:
    """Pretrain ``model`` in ``processes`` processes with ``threads // processes`` threads each; figures."""
    import torch

    from trajzoo.training import launch

    out.mkdir(parents=True, exist_ok=True)
    per = max(1, threads // processes)
    launch.run(_pretrain, str(city_dir), str(out), per, model, processes=processes, threads=per)
    figures = json.loads((out / "figures.json").read_text())
    figures["state"] = torch.load(out / "state.pt", weights_only=True)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="total torch threads of a run")
    ap.add_argument("--city-dir", type=Path, default=REPO / "results/porto")
    ap.add_argument("--model", choices=sorted(MODEL_HPARAMS), default="transformer-mlm")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="trajzoo-dp-bench-") as tmp:
        one = run(1, args.threads, args.city_dir, Path(tmp) / "one", args.model)
        many = run(args.processes, args.threads, args.city_dir, Path(tmp) / "many", args.model)
    d = HPARAMS["d_model"]
    diff, worst = 0.0, ""
    for name, a in one["state"].items():
        b = many["state"][name]
        if name.endswith("self_attn.in_proj_bias") or name.endswith("attention.qkv.bias"):  # key biases: zero
            # gradient, Adam-amplified noise
            a, b = a[list(range(d)) + list(range(2 * d, 3 * d))], b[list(range(d)) + list(range(2 * d, 3 * d))]
        if name.endswith("w_k.bias"):  # MetaTRL's key biases (eq. 18): the same
            continue
        if float((a - b).abs().max()) > diff:
            diff, worst = float((a - b).abs().max()), name
    n = one["train_trips"]
    table = [
        (f"model {args.model}; train trips (1 epoch, global batch 64)", f"{n}", "", ""),
        (f"1 process x {args.threads} threads: s", f"{one['seconds']:.1f}", "", ""),
        (f"1 process: trajectories/s", f"{n / one['seconds']:.1f}", "", ""),
        (f"{args.processes} processes x {max(1, args.threads // args.processes)} threads: s",
         f"{many['seconds']:.1f}", "", ""),
        (f"{args.processes} processes: trajectories/s", f"{n / many['seconds']:.1f}", "", ""),
        ("speed-up (1 process s / K processes s)", f"{one['seconds'] / many['seconds']:.2f}", "(measured)", ""),
        (f"max |weight difference| vs 1 process ({worst})", f"{diff:.2e}", "<= 1e-5", f"{1e-5 / max(diff, 1e-12):.1f}"),
    ]
    header = ("figure", "value", "target", "ratio (>= 1 met)")
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(4)]
    for r in [header, *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
