"""Throughput of ingest and map matching at 1 and 2 cores, and the projected wall time of the full
Porto train.csv (1.7 M trips) on 8 cores from these rates (benchmark_streaming's projection).

Measured on the shipped real data, with the pipeline's own functions and the default config:

1. San Francisco (cabspottingdata_north_14d.tar.xz, 955,930 GPS fixes; sf_north.osm.bz2): streaming
   ingest (one process: the reader is one decompression stream), road network, UBODT build, and
   map matching of every kept trip with 1 and with 2 worker processes.
2. Porto calibration (the mirrored train.csv sample, porto_center.osm.bz2): ingest rate of the
   Porto reader, the Porto UBODT build time and the 1-core matching rate on the Porto network,
   which is about 4x the size of SF's (skip with ``--no-porto``; the projection then uses the SF
   rates).

Projection: :func:`benchmark_streaming.projection_rows` (the one full-Porto projection of the
benchmarks, target 10 minutes) with this run's ingest rate and 1-core matching rate (the UBODT
load as each chunk job's setup; the gather is not measured here); benchmark_streaming.py fits the
same projection on the Porto sample replicated to two sizes.

Run from the repository root: ``python benchmarks/benchmark_scaling.py`` (about 4 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import contextlib
import lzma
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmark_streaming: the projection


@contextlib.contextmanager
def quiet_stdout():
    """Send file descriptor 1 to /dev/null: fastmm's C++ log writes there and cannot be silenced."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def bench_city(city: str, cfg: dict, data_root: Path, work: Path, worker_counts: tuple[int, ...]) -> dict:
    """Ingest, network, UBODT and matching of one city's shipped data; returns the measured figures."""
    from trajzoo.ingest import ingest_city_to_parquet
    from trajzoo.mapmatching.fmm import (MatchParams, build_matcher, build_ubodt, match_batch, match_trips,
                                         project_points, resolve_ubodt_delta)
    from trajzoo.roads.network import build_road_network

    ccfg = cfg["cities"][city]
    out = work / city
    out.mkdir(parents=True)
    qc, t_ingest = timed(ingest_city_to_parquet, ccfg, data_root, out / "trips.parquet", out / "rej.parquet")
    counts = dict(zip(qc["outcome"], qc["count"]))
    trips = pd.read_parquet(out / "trips.parquet")
    kept_points = int(trips["n_points"].sum())
    raw_points = int(counts.get("fixes_in", 0)) or None  # Cabspotting counts raw fixes; Porto below
    (seg, _), t_net = timed(build_road_network, ccfg["osm"], data_root, ccfg["crs"])
    params = MatchParams.from_dict({**ccfg["map_matching"], "ubodt_delta": resolve_ubodt_delta(ccfg)[0]})
    _, t_ubodt = timed(build_ubodt, seg, params, out / "ubodt")
    (net, matcher), t_load = timed(build_matcher, seg, params, out / "ubodt", require_ubodt=True)
    # matching alone (fastmm + trajzoo's conversion of each result), 1 core, setup excluded
    x, y = project_points(np.concatenate(trips["lon"].to_numpy()), np.concatenate(trips["lat"].to_numpy()),
                          ccfg["crs"])
    t = np.concatenate(trips["timestamps"].to_numpy()).astype(np.float64)
    bounds = np.cumsum([0] + [len(a) for a in trips["lon"]])
    t0 = time.perf_counter()
    match_batch(matcher, x, y, t, bounds, params)  # the stage's per-batch matching, one batch
    t_match_only = time.perf_counter() - t0
    del matcher, net
    r = {"city": city, "trips_in": int(counts["in"]), "trips_kept": len(trips), "kept_points": kept_points,
         "raw_points": raw_points, "ingest_s": t_ingest, "network_s": t_net, "ubodt_s": t_ubodt,
         "ubodt_load_s": t_load, "match_only_s": t_match_only, "segments": len(seg), "match": {}}
    for w in worker_counts:
        (m, _, _), t = timed(match_trips, trips, seg, ccfg["crs"], params, out / "ubodt", workers=w,
                             progress=False, require_ubodt=True)
        r["match"][w] = {"wall_s": t, "kept": len(m)}
    return r


def porto_sample_points(path: Path) -> tuple[int, int]:
    """(data rows, GPS points) of a Porto train.csv, counted from the raw POLYLINE text."""
    rows = points = 0
    with lzma.open(path, "rt") if path.suffix == ".xz" else open(path) as f:
        next(f)
        for line in f:
            rows += 1
            points += line.count("[") - 1 if "[[" in line else 0
    return rows, points


def report_city(r: dict) -> None:
    pts = r["kept_points"]
    raw = f"{r['raw_points']:,} raw GPS fixes -> " if r["raw_points"] else ""
    print(f"[{r['city']}] {raw}{r['trips_in']:,} trips in, {r['trips_kept']:,} kept with {pts:,} points; "
          f"{r['segments']:,} road segments")
    src = r["raw_points"] or r["porto_raw_points"]
    print(f"  ingest, 1 process (streamed): {r['ingest_s']:.1f} s = {src / r['ingest_s']:,.0f} raw points/s, "
          f"{r['trips_in'] / r['ingest_s']:,.0f} trips/s")
    print(f"  road network {r['network_s']:.1f} s; UBODT build {r['ubodt_s']:.1f} s (1 core, once per city); "
          f"UBODT load per chunk job {r['ubodt_load_s']:.1f} s")
    print(f"  map matching alone, 1 core (fastmm + conversion, setup excluded): {r['match_only_s']:.1f} s = "
          f"{pts / r['match_only_s']:,.0f} points/s, {r['trips_kept'] / r['match_only_s']:,.0f} trips/s")
    base = None
    for w, m in r["match"].items():
        rate = pts / m["wall_s"]
        base = base or rate
        print(f"  map matching, {w} worker process(es): {m['wall_s']:.1f} s = {rate:,.0f} points/s, "
              f"{r['trips_kept'] / m['wall_s']:,.0f} trips/s ({rate / base / w:.0%} of linear from 1 worker; "
              f"the stage as a chunk job runs it: network build and UBODT load included)")


def project(porto: dict | None, sf: dict, sample_rows: int, sample_points: int) -> None:
    """Print the full-Porto projection of :func:`benchmark_streaming.projection_rows` (the one
    projection of the benchmarks) from this run's rates: ingest of the Porto reader (SF's with
    ``--no-porto``), the 1-core matching rate with the UBODT load as each chunk's setup, no gather."""
    import benchmark_streaming
    from benchmark_training import print_table

    cal = porto or sf
    raw = cal["porto_raw_points"] if porto else sf["raw_points"]
    rows = benchmark_streaming.projection_rows(
        sample_points / sample_rows, cal["kept_points"] / raw, (0.0, raw / cal["ingest_s"]),
        (cal["ubodt_load_s"], cal["kept_points"] / cal["match_only_s"]), None,
        f"{'Porto' if porto else 'SF'} rates, wall clock")
    t_ubodt = cal["network_s"] + cal["ubodt_s"]
    rows.append((f"road network + UBODT build, serial ({'Porto' if porto else 'SF'} network), beside ingest "
                 "(not counted)", f"{t_ubodt / 60:.1f} min", "", ""))
    print(f"[projection] full Porto train.csv on {benchmark_streaming.PROJECT_CORES} cores (assumes linear scaling "
          "from the 1-core rate over the chunk jobs and trips as dense as the sample's; the measured one at two "
          "sizes is benchmarks/benchmark_streaming.py)")
    print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-porto", action="store_true", help="skip the Porto calibration (SF rates only)")
    args = parser.parse_args()
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    data_root = (REPO / cfg["data_root"]).resolve()
    sample_rows, sample_points = porto_sample_points(data_root / cfg["cities"]["porto"]["trajectories"]["path"])
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(other processes on these cores lower the 2-worker figures)")
    with tempfile.TemporaryDirectory(prefix="trajzoo-scaling-") as tmp:
        with quiet_stdout():
            sf = bench_city("sanfrancisco", cfg, data_root, Path(tmp), (1, 2))
        report_city(sf)
        porto = None
        if not args.no_porto:
            with quiet_stdout():
                porto = bench_city("porto", cfg, data_root, Path(tmp), (1,))
            porto["porto_raw_points"] = sample_points
            report_city(porto)
    project(porto, sf, sample_rows, sample_points)


if __name__ == "__main__":
    main()
