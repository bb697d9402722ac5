"""The ``trajzoo`` console script: use a trained model bundle on new raw GPS trips.

    trajzoo embed   BUNDLE TRIPS --format porto_csv --out embeddings.parquet
    trajzoo predict BUNDLE TRIPS --head results/porto/eval/.../tte_head.pt --format porto_csv --out tte.parquet

``TRIPS`` is a file (or folder) in any installed ``trajzoo.readers`` format, or a Parquet table of
trips in the ingest layout (``--format trips_parquet``: trip_id, timestamps, lon, lat). The
rejected trips and their reasons go to ``<out stem>.rejections.parquet`` beside the output.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd


def _trips(args):
    if args.format == "trips_parquet":
        return pd.read_parquet(args.trips), None
    return Path(args.trips), args.format


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="model bundle folder (results/models/<model>/<variant>/<training>/seed<s>/bundle)")
    p.add_argument("trips", help="raw GPS trips: a file or folder in --format")
    p.add_argument("--format", required=True,
                   help="a trajzoo.readers entry point (porto_csv, cabspotting, deeptte_jsonl, ...) or trips_parquet")
    p.add_argument("--source", default="{}", help="JSON of further reader keys, e.g. '{\"occupied_runs\": {...}}'")
    p.add_argument("--out", required=True, help="output Parquet file")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=1, help="map-matching worker processes")
    p.add_argument("--ubodt-dir", default=None, help="fastmm UBODT cache (default: <bundle>/ubodt)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``trajzoo`` (``[project.scripts]``); returns the exit status (0 = written,
    2 = bad arguments or input, with the error on stderr)."""
    from trajzoo.bundle import EmbeddingResult, load_model

    parser = argparse.ArgumentParser(prog="trajzoo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _common(sub.add_parser("embed", help="one embedding per trip -> Parquet (trip_id, embedding)"))
    pp = sub.add_parser("predict", help="per-trip predictions of a fine-tuned task head -> Parquet")
    _common(pp)
    pp.add_argument("--head", required=True, help="<task>_head.pt written by the evaluate rule")
    args = parser.parse_args(argv)
    try:
        model = load_model(args.bundle, args.device)
        trips, fmt = _trips(args)
        source = json.loads(args.source)
        kwargs = dict(format=fmt, source=source, batch_size=args.batch_size, ubodt_dir=args.ubodt_dir,
                      workers=args.workers)
        if args.command == "embed":
            result = model.embed(trips, **kwargs)
            out, rej = result.to_parquet(args.out)
            print(f"{len(result.embeddings)} embeddings -> {out}; {len(result.rejections)} rejected -> {rej}")
        else:
            pred, rejections = model.predict(trips, args.head, **kwargs)
            out, rej = EmbeddingResult(pred, rejections, 0).to_parquet(args.out)
            print(f"{len(pred)} predictions -> {out}; {len(rejections)} rejected -> {rej}")
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"trajzoo {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
