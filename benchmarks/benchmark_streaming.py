"""Memory of ingest and map matching at two sizes of the real Porto sample, and the projected wall
time of the full Porto train.csv (1,710,670 trips) on 8 cores (issue 14, "Full-size data").

Benchmark only (never in the main job): the mirrored sample ``porto/train.csv.xz`` (2,499 trips,
122,862 GPS points) is replicated ``k`` times into a temporary folder as a plain CSV (the format
Kaggle distributes), the TRIP_ID of copy ``c`` suffixed ``-r<c>`` so ids stay unique, every other
field unchanged (so each copy is filtered exactly as the sample: kept(k) = k x kept(1) is checked).
For each size, each stage runs in a fresh Python process with the same functions the rule scripts
call, and the parent reads the child's peak RSS (``ru_maxrss``, with its worker processes) and
CPU time from ``os.wait4``:

- ingest: ``city_coverage`` + ``ingest_city_to_parquet`` (workflow/scripts/ingest_trajectories.py);
  points/s = raw GPS points of the file / wall time of the call.
- map matching, one scatter chunk holding every trip (``match_chunk(..., 0, 1, ...)`` as
  workflow/scripts/map_match_chunk.py calls it, 1 worker process by default): the UBODT loaded
  once, the trips matched in batches of ``chunks.BATCH_POINTS`` GPS fixes, each batch's tables
  appended to the three Parquet files; points/s = GPS points of the kept (ingested) trips / wall
  time of the call.
- gather (workflow/scripts/map_match.py): ``gather_chunk_files`` of that one chunk, streamed row
  group by row group into the city's three tables with the QC counted on the way; points/s as
  for matching.

Bounded memory means: the peak RSS of each stage at the large size over the small one is at most
``TARGET_RSS_GROWTH`` (no stage holds its output tables in memory any more), and so is the peak
over the second half of the large run over its first half.

A thread in each child samples its RSS every 0.25 s: the peak over the
second half of the large run over the peak of its first half is ~1 for a bounded stage whatever
the sizes, and grows for a stage that accumulates. (Ingest reads 4 MB CSV blocks: seven at 10x,
69 at 100x. With 16 MB blocks the second-half ratio hid a growth with the file: pyarrow's CSV
reader read up to 32 blocks ahead, i.e. the whole 100x file at its start; see
``trajzoo.ingest.porto.ReadGate``.)

The road network and the UBODT are built once in the temporary folder with the rules' functions
(``build_road_network``, ``build_ubodt``; about 1.5 minutes), or taken from ``--roads-dir`` (a
``results/porto`` with ``roads/segments.parquet`` and ``ubodt/``).

Projection (:func:`projection_rows`, the benchmarks' one full-Porto projection): points of the
full file = 1,710,670 trips x the sample's mean points per trip (122,862 / 2,499 = 49.16); each
stage's time is fitted as ``t = setup + points / rate`` from the two sizes, on the wall clock and
on the children's CPU time (what idle cores give: this machine is shared). Ingest is one process
(one decompression stream). Matching: the kept fraction of points (measured) over 8 scatter chunks
on 8 cores (``--set-scatter map_match=8``, 1 worker each; 4 chunks x 2 workers is the same), then
the gather (one process). Roads and the UBODT are not counted (built once per city; the UBODT
build runs beside ingest in the DAG).

Run from the repository root: ``python benchmarks/benchmark_streaming.py`` (sizes 10x and 100x:
1.2 M and 12.3 M raw points; about 15 minutes on 2 loaded cores). ``--sizes 2 5`` for a quick run;
``--stages ingest`` measures some stages only (each stage reads the previous one's files, so
ingest always runs, and the gather runs after matching), without the projection (which needs all three).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import lzma
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
#: Data rows of the full Kaggle train.csv (ECML/PKDD 2015).
PORTO_FULL_TRIPS = 1_710_670
PROJECT_CORES = 8
TARGET_MINUTES = 10.0
#: Largest allowed growth of peak RSS from the small to the large size (the outputs excluded).
TARGET_RSS_GROWTH = 1.10


def rss_mb() -> float:
    """Current resident set size of this process (MB, /proc/self/status VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RSSSampler:
    """Samples this process's RSS every ``interval`` s in a thread, to tell a memory that grows
    with the input (the second half of a run peaks higher) from one that is bounded."""

    def __init__(self, interval: float = 0.25):
        import threading

        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        t0 = time.perf_counter()
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - t0, rss_mb()))
            self._stop.wait(interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def halves(self) -> tuple[float, float]:
        """Peak RSS (MB) over the first and over the second half of the sampled time."""
        if len(self.samples) < 2:
            return float("nan"), float("nan")
        end = self.samples[-1][0]
        first = [r for t, r in self.samples if t <= end / 2]
        second = [r for t, r in self.samples if t > end / 2]
        return max(first), max(second)


def replicate_sample(sample: Path, factor: int, out_csv: Path) -> dict:
    """Write ``factor`` copies of the Porto sample as one plain CSV, TRIP_ID ``<id>-r<copy>``.

    Returns:
        ``{"trips": rows written, "points": GPS points written, "bytes": file size}``.
    """
    text = lzma.open(sample, "rt", encoding="utf-8", newline="").read()
    rows = list(csv.reader(io.StringIO(text)))
    header, data = rows[0], rows[1:]
    points = sum(len(json.loads(r[8])) if r[8].strip() else 0 for r in data)
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    body = []
    for r in data:
        buf.seek(0)
        buf.truncate()
        w.writerow(r[1:])
        body.append((r[0], buf.getvalue()))
    with open(out_csv, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(header)
        for c in range(factor):
            f.writelines(f'"{tid}-r{c}",{rest}' for tid, rest in body)
    return {"trips": len(data) * factor, "points": points * factor, "bytes": out_csv.stat().st_size}


# --------------------------------------------------------------------------- children

def child_ingest(a: argparse.Namespace) -> dict:
    from trajzoo.ingest import city_coverage, ingest_city_to_parquet
    from trajzoo.qc import parquet_rows
    import pyarrow.parquet as pq

    city = json.loads(Path(a.city_json).read_text())
    out = Path(a.out)
    base = rss_mb()
    t0 = time.perf_counter()
    with RSSSampler() as sampler:
        coverage = city_coverage(city, a.segments, a.data_root)
        qc = ingest_city_to_parquet(city, a.data_root, out / "trips.parquet", out / "ingest_rejections.parquet",
                                    coverage=coverage)
    wall = time.perf_counter() - t0
    qc.to_csv(out / "ingest.csv", index=False)
    counts = dict(zip(qc["outcome"], qc["count"].astype(int)))
    kept_points = int(pq.read_table(out / "trips.parquet", columns=["n_points"]).column("n_points")
                      .to_numpy().sum())
    return {"wall_s": wall, "rss_before_mb": base, "trips_in": int(counts["in"]), "kept": int(counts["kept"]),
            "kept_points": kept_points, "rows_written": parquet_rows(out / "trips.parquet"),
            "row_groups": pq.ParquetFile(out / "trips.parquet").metadata.num_row_groups,
            "counts": {k: int(v) for k, v in counts.items()}, "rss_halves_mb": sampler.halves()}


def _file_mb(*paths: Path) -> float:
    """Size (MB) of files on disk."""
    return sum(Path(p).stat().st_size for p in paths) / 1e6


def child_match(a: argparse.Namespace) -> dict:
    """workflow/scripts/map_match_chunk.py on one chunk holding every trip: matched in batches of
    ``BATCH_POINTS`` fixes and streamed to three Parquet files (the tables are never in memory)."""
    import pandas as pd

    from trajzoo.mapmatching.chunks import BATCH_POINTS, match_chunk
    from trajzoo.mapmatching.fmm import MatchParams

    city = json.loads(Path(a.city_json).read_text())
    out = Path(a.out)
    segments = pd.read_parquet(a.segments)
    params = MatchParams.from_dict(city["map_matching"])
    files = [out / f"{t}_chunk.parquet" for t in ("matched", "stats", "rejections")]
    base = rss_mb()
    t0 = time.perf_counter()
    with RSSSampler() as sampler:
        counts = match_chunk(out / "trips.parquet", segments, city["crs"], params, a.ubodt, 0, 1, *files,
                             workers=int(a.workers), progress=False)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "points": counts["points"], "trips": counts["trips"], "kept": counts["kept"],
            "batches": counts["batches"], "batch_points": BATCH_POINTS, "rss_before_mb": base,
            "rss_after_mb": rss_mb(), "outputs_file_mb": _file_mb(*files), "rss_halves_mb": sampler.halves()}


def child_gather(a: argparse.Namespace) -> dict:
    """workflow/scripts/map_match.py's gather of that one chunk, streamed to the three tables."""
    from trajzoo.mapmatching.chunks import gather_chunk_files

    out = Path(a.out)
    files = [out / f"{t}.parquet" for t in ("matched", "map_matching_stats", "map_matching_rejections")]
    base = rss_mb()
    t0 = time.perf_counter()
    with RSSSampler() as sampler:
        qc, tally = gather_chunk_files([out / "matched_chunk.parquet"], [out / "stats_chunk.parquet"],
                                       [out / "rejections_chunk.parquet"], out / "trips.parquet", *files)
    qc.to_csv(out / "map_matching.csv", index=False)
    return {"wall_s": time.perf_counter() - t0, "rss_before_mb": base, "outputs_file_mb": _file_mb(*files),
            "kept": tally.kept, "rss_halves_mb": sampler.halves()}


CHILDREN = {"ingest": child_ingest, "match": child_match, "gather": child_gather}


def run_child(stage: str, **kw) -> dict:
    """Run one stage in a fresh process; adds its peak RSS (MB) and CPU seconds from ``os.wait4``."""
    res = Path(kw["out"]) / f"{stage}.json"
    cmd = [sys.executable, __file__, "--child", stage, "--result", str(res)]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    # fastmm's C++ log writes to fd 1: the child's stdout goes to a log file
    with open(Path(kw["out"]) / f"{stage}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{stage} child failed ({proc.returncode}); see {Path(kw['out']) / (stage + '.log')}")
    out = json.loads(res.read_text())
    out["peak_rss_mb"] = usage.ru_maxrss / 1024
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    return out


# --------------------------------------------------------------------------- parent

def porto_city(cfg: dict) -> dict:
    """The config's Porto section with ``map_matching.ubodt_delta: auto`` resolved to metres (as
    workflow/rules/common.smk does before any rule runs)."""
    from trajzoo.mapmatching.fmm import resolve_ubodt_delta

    city = dict(cfg["cities"]["porto"])
    city["map_matching"] = {**city["map_matching"], "ubodt_delta": resolve_ubodt_delta(city)[0]}
    return city


def prepare_roads(cfg: dict, work: Path, roads_dir: Path | None, need_ubodt: bool = True) -> tuple[Path, Path]:
    """``(segments.parquet, ubodt dir)``: from ``roads_dir`` or built with the rules' functions
    (the UBODT only when ``need_ubodt``: map matching is measured)."""
    if roads_dir is not None:
        seg, ubodt = roads_dir / "roads/segments.parquet", roads_dir / "ubodt"
        if not seg.exists() or (need_ubodt and not any(ubodt.glob("ubodt_*"))):
            sys.exit(f"{roads_dir} lacks roads/segments.parquet or ubodt/ubodt_*")
        return seg, ubodt
    import pandas as pd

    from trajzoo.mapmatching.fmm import MatchParams, build_ubodt
    from trajzoo.roads.network import build_road_network

    city = porto_city(cfg)
    data_root = (REPO / cfg["data_root"]).resolve()
    (work / "roads").mkdir(parents=True)
    t0 = time.perf_counter()
    segments, _ = build_road_network(city["osm"], data_root, city["crs"], city["bbox"])
    segments.to_parquet(work / "roads/segments.parquet", index=False)
    if need_ubodt:
        build_ubodt(pd.read_parquet(work / "roads/segments.parquet"),
                    MatchParams(ubodt_delta=float(city["map_matching"]["ubodt_delta"])), work / "ubodt")
    print(f"  roads + UBODT built in {time.perf_counter() - t0:.0f} s (not counted)", flush=True)
    return work / "roads/segments.parquet", work / "ubodt"


def fit(x1: float, t1: float, x2: float, t2: float) -> tuple[float, float]:
    """``(setup_s, rate)`` of ``t = setup + x / rate`` through two points (setup clipped at 0)."""
    rate = (x2 - x1) / max(t2 - t1, 1e-9)
    setup = max(t1 - x1 / rate, 0.0)
    return setup, rate


#: The stages in the order they run (each reads the previous one's files).
STAGES = ("ingest", "match", "gather")


def measure(sizes: list[int], roads_dir: Path | None, workers: int, keep: bool,
            stages: tuple[str, ...] = STAGES) -> dict:
    """Replicate, run ``stages`` (ingest always: the others read its trips) per size; returns every figure."""
    stages = tuple(st for st in STAGES if st in stages or st == "ingest" or (st == "match" and "gather" in stages))
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    data_root = (REPO / cfg["data_root"]).resolve()
    work = Path(tempfile.mkdtemp(prefix="trajzoo-stream-"))
    print(f"work folder {work}", flush=True)
    try:
        segments, ubodt = prepare_roads(cfg, work, roads_dir, need_ubodt="match" in stages)
        results = {}
        for k in sizes:
            root = work / f"x{k}"
            (root / "porto").mkdir(parents=True)
            (root / "porto/osm").symlink_to(data_root / "porto/osm")  # the declared OSM box of coverage
            rep = replicate_sample(data_root / cfg["cities"]["porto"]["trajectories"]["path"], k,
                                   root / "porto/train.csv")
            city = porto_city(cfg)
            city["trajectories"] = {**city["trajectories"], "path": "porto/train.csv"}
            city["caps"] = {"max_trips": None}
            (root / "city.json").write_text(json.dumps(city))
            common = dict(out=root, city_json=root / "city.json", segments=segments, data_root=root)
            print(f"  {k}x: {rep['trips']:,} trips, {rep['points']:,} points, {rep['bytes'] / 1e6:.0f} MB CSV",
                  flush=True)
            results[k] = {"replica": rep}
            for st in stages:
                extra = dict(ubodt=ubodt, workers=workers) if st == "match" else {}
                r = results[k][st] = run_child(st, **common, **extra)
                h1, h2 = r["rss_halves_mb"]
                print(f"    {st} {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB (halves {h1:.0f}, "
                      f"{h2:.0f} MB)", flush=True)
            for f in ("porto/train.csv",):  # free the disk as we go
                (root / f).unlink()
        return {"sizes": sizes, "results": results, "workers": workers, "stages": stages}
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def rows(sizes: list[int] | None = None, roads_dir: Path | None = None, workers: int = 1,
         keep: bool = False, stages: tuple[str, ...] = STAGES) -> list[tuple]:
    """Table rows ``(figure, value, target, ratio)`` (ratio >= 1: met), in run_all.py's style; the
    rows of the stages measured (:func:`measure`), the projection only when all three were."""
    sizes = sizes or [10, 100]
    m = measure(sizes, roads_dir, workers, keep, stages)
    stages = m["stages"]
    small, large = (m["results"][k] for k in (min(sizes), max(sizes)))
    ks, kl = min(sizes), max(sizes)
    out: list[tuple] = []
    base = small["replica"]
    for k in (ks, kl):
        r = m["results"][k]
        out.append((f"ingest {k}x ({r['replica']['points'] / 1e6:.1f} M points) points/s, 1 process",
                    f"{r['replica']['points'] / r['ingest']['wall_s']:,.0f}", "", ""))
        out.append((f"ingest {k}x points per CPU second (what an idle core gives)",
                    f"{r['replica']['points'] / r['ingest']['cpu_s']:,.0f}", "", ""))
        out.append((f"ingest {k}x peak RSS MB", f"{r['ingest']['peak_rss_mb']:.0f}", "", ""))
        if "match" not in stages:
            continue
        out.append((f"map matching {k}x ({r['match']['points'] / 1e6:.1f} M kept points, {r['match']['batches']} "
                     f"batches of <= {r['match']['batch_points']:,} fixes) points/s, {m['workers']} process",
                    f"{r['match']['points'] / r['match']['wall_s']:,.0f}", "", ""))
        out.append((f"map matching {k}x chunk peak RSS MB (output files {r['match']['outputs_file_mb']:.0f} MB on disk)",
                    f"{r['match']['peak_rss_mb']:.0f}", "", ""))
        if "gather" not in stages:
            continue
        out.append((f"map matching gather {k}x points/s", f"{r['match']['points'] / r['gather']['wall_s']:,.0f}", "", ""))
        out.append((f"map matching gather {k}x peak RSS MB", f"{r['gather']['peak_rss_mb']:.0f}", "", ""))
    names = [(st, name) for st, name in (("ingest", "ingest"), ("match", "map matching chunk"),
                                         ("gather", "map matching gather")) if st in stages]
    for st, name in names:
        h1, h2 = large[st]["rss_halves_mb"]
        out.append((f"{name} {kl}x peak RSS, 2nd half of the run / 1st half (bounded: ~1)", f"{h2 / h1:.2f}x",
                    f"<= {TARGET_RSS_GROWTH:.2f}x", f"{TARGET_RSS_GROWTH / (h2 / h1):.2f}"))
    # every copy is filtered like the sample: kept must scale exactly
    exact = all(m["results"][k]["ingest"]["kept"] * ks == small["ingest"]["kept"] * k for k in sizes)
    out.append((f"ingest kept trips {kl}x / {ks}x (each copy filtered alike)",
                f"{large['ingest']['kept'] / small['ingest']['kept']:.2f}", f"= {kl / ks:.2f}",
                "ok" if exact else "MISMATCH"))
    if "match" in stages:
        exact = all(m["results"][k]["match"]["kept"] * ks == small["match"]["kept"] * k for k in sizes)
        out.append((f"map matching kept trips {kl}x / {ks}x (each copy matched alike)",
                    f"{large['match']['kept'] / small['match']['kept']:.2f}", f"= {kl / ks:.2f}",
                    "ok" if exact else "MISMATCH"))
    for st, name in names:
        g = large[st]["peak_rss_mb"] / small[st]["peak_rss_mb"]
        out.append((f"{name} peak RSS {kl}x / {ks}x", f"{g:.2f}x", f"<= {TARGET_RSS_GROWTH:.2f}x",
                    f"{TARGET_RSS_GROWTH / g:.2f}"))
    if tuple(stages) != STAGES:  # the projection needs every stage
        return out
    slope = (large["match"]["peak_rss_mb"] - small["match"]["peak_rss_mb"]) * 1e6 / \
        (large["match"]["points"] - small["match"]["points"])
    out.append(("map matching chunk peak RSS growth, bytes per kept point", f"{slope:.1f}", "", ""))

    # projection for the full train.csv, from the two sizes
    mean_pts = base["points"] / base["trips"]
    kept_frac = large["ingest"]["kept_points"] / large["replica"]["points"]
    for clock, tag in (("wall_s", "wall clock"), ("cpu_s", "CPU time")):
        x = {st: [r["replica"]["points"] if st == "ingest" else r["match"]["points"] for r in (small, large)]
             for st in ("ingest", "match", "gather")}
        fits = {st: fit(x[st][0], small[st][clock], x[st][1], large[st][clock]) for st in x}
        # the chunk's rate is of its m["workers"] processes: the rate per process
        fits["match"] = (fits["match"][0], fits["match"][1] / m["workers"])
        out += projection_rows(mean_pts, kept_frac, fits["ingest"], fits["match"], fits["gather"], tag,
                               counts=clock == "wall_s")
    chunk_rss = small["match"]["peak_rss_mb"] + \
        max(slope, 0.0) * (PORTO_FULL_TRIPS * mean_pts * kept_frac / PROJECT_CORES - small["match"]["points"]) / 1e6
    out.append((f"full Porto matching chunk peak RSS, 1/{PROJECT_CORES} of the trips (projected from the slope)",
                f"{chunk_rss / 1e3:.2f} GB", "", ""))
    cpu = [large[st]["cpu_s"] / large[st]["wall_s"] for st in ("ingest", "match", "gather")]
    out.append((f"CPU / wall of the {kl}x children (ingest, matching, gather; < 1: the machine was shared)",
                ", ".join(f"{c:.2f}" for c in cpu), "", ""))
    return out


def projection_rows(mean_points: float, kept_fraction: float, ingest: tuple[float, float],
                    match: tuple[float, float], gather: tuple[float, float] | None, tag: str,
                    counts: bool = True, cores: int = PROJECT_CORES) -> list[tuple]:
    """Rows of the projected wall time of the full Porto train.csv on ``cores`` cores (the one
    full-Porto projection of the benchmarks; benchmark_scaling.py calls it with its own rates).

    Points of the full file = ``PORTO_FULL_TRIPS`` x ``mean_points`` (mean GPS points per raw trip
    of the sample); kept points = that x ``kept_fraction`` (measured). Each stage takes
    ``setup + points / rate``: ingest in one process (one decompression stream) over the raw
    points; matching over the kept points in ``cores`` scatter chunks of one process each
    (``--set-scatter map_match=<cores>``), each loading the UBODT once (setup paid in parallel);
    the gather in one process over the kept points (``None``: not measured, not counted). Roads
    and the UBODT build are not counted (built once per city, beside ingest in the DAG).

    Args:
        mean_points: GPS points per trip of the sample.
        kept_fraction: kept points / raw points, in [0, 1].
        ingest, match, gather: ``(setup_s, points_per_s)``; ``match``'s rate is per process.
        tag: the clock the rates were measured with (prefix of the rows, e.g. ``"wall clock"``).
        counts: also print the two rows of point counts.

    Returns:
        ``(figure, value, target, ratio)`` rows; the last is the total against ``TARGET_MINUTES``.
    """
    full_pts = PORTO_FULL_TRIPS * mean_points
    full_kept = full_pts * kept_fraction
    out: list[tuple] = []
    if counts:
        out.append((f"full Porto: {PORTO_FULL_TRIPS:,} trips x {mean_points:.2f} points/trip (sample mean)",
                    f"{full_pts / 1e6:.1f} M points", "", ""))
        out.append((f"full Porto: kept points ({kept_fraction:.1%} of raw, measured)", f"{full_kept / 1e6:.1f} M", "", ""))
    t_ing = ingest[0] + full_pts / ingest[1]
    t_mat = match[0] + full_kept / (cores * match[1])
    t_gat = gather[0] + full_kept / gather[1] if gather is not None else 0.0
    total = t_ing + t_mat + t_gat
    out.append((f"[{tag}] full Porto ingest, 1 process (setup {ingest[0]:.0f} s + {ingest[1]:,.0f} points/s)",
                f"{t_ing / 60:.1f} min", "", ""))
    out.append((f"[{tag}] full Porto matching, {cores} chunks on {cores} cores (setup {match[0]:.0f} s + "
                f"{match[1]:,.0f} points/s each)", f"{t_mat / 60:.1f} min", "", ""))
    if gather is not None:
        out.append((f"[{tag}] full Porto matching gather, 1 process (setup {gather[0]:.0f} s + "
                    f"{gather[1]:,.0f} points/s)", f"{t_gat / 60:.1f} min", "", ""))
    out.append((f"[{tag}] full Porto ingest + matching{'' if gather is not None else ' (no gather)'} on {cores} "
                "cores (projected)", f"{total / 60:.1f} min", f"<= {TARGET_MINUTES:.0f} min",
                f"{TARGET_MINUTES * 60 / total:.2f}"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=[10, 100], help="replication factors (small, large)")
    ap.add_argument("--roads-dir", type=Path, help="a results/porto with roads/segments.parquet and ubodt/")
    ap.add_argument("--workers", type=int, default=1, help="worker processes of the matching chunk")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                    help="stages to measure (ingest always runs; the projection needs all three)")
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    for k in ("result", "out", "city-json", "segments", "data-root", "ubodt"):
        ap.add_argument(f"--{k}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.data_root = Path(args.data_root)
        Path(args.result).write_text(json.dumps(CHILDREN[args.child](args)))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchmark_training import print_table

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    table = rows(sorted(args.sizes), args.roads_dir, args.workers, args.keep, tuple(args.stages))
    print(f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores; benchmark wall {(time.perf_counter() - t0) / 60:.1f} min")
    print_table(table)


if __name__ == "__main__":
    main()
