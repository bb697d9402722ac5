"""Benchmarks of the main job's heavy parts; prints its figures.

1. Map matching: GPS points/s of the map-matching stage (``match_trips`` with the rule's worker
   processes) versus a bare fastmm loop with the same number of processes over the same trips,
   with the same fastmm parameters and the same prebuilt UBODT (:func:`bench_map_matching` says
   exactly what is shared). Target: stage >= 0.9x the bare loop.
2. Training: MetaTRL pretraining and fine-tuning trajectories/s on the Porto target data with the
   default config's hyperparameters.
3. With ``--main-job``: wall time of the cold main job (``snakemake --cores N
   results/porto/metatrl.csv`` in a fresh directory). Target: <= 20 minutes on 2 cores.

Needs the pipeline's prepared data for the city (``snakemake --cores 2 results/porto/matched.parquet
results/porto/roads/transitions.parquet``); run from the repository root.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


_BARE: dict = {}


def _bare_span(span: tuple[int, int]) -> int:
    """Bare fastmm loop over trips ``span``: ``Trajectory.from_xyt_tuples`` + ``match``, result
    dropped; with ``_BARE["read"]`` also the route of every matched piece read out of fastmm's
    result objects the cheapest way the bindings allow (road ids and entry times,
    :func:`trajzoo.mapmatching.fmm._walk_piece`): what any caller that wants the route pays."""
    import fastmm

    from trajzoo.mapmatching.fmm import _walk_piece

    matcher, xyt, kw, read = _BARE["matcher"], _BARE["xyt"], _BARE["kw"], _BARE.get("read", False)
    success = fastmm.MatchErrorCode.SUCCESS
    for pts in xyt[span[0]:span[1]]:
        result = matcher.match(fastmm.Trajectory.from_xyt_tuples(pts), **kw)
        if read:
            for sub in result.subtrajectories:
                if sub.error_code == success:
                    _walk_piece(sub)
    return span[1] - span[0]


def _bare_loop(segments, params, ubodt, xyt, workers: int, chunk_size: int, read: bool = False) -> tuple[float, float]:
    """Wall time (s) of the bare loop with its setup (network, UBODT load and free), and of matching
    only; ``read``: also read each matched piece's route out of the result objects (:func:`_bare_span`)."""
    import multiprocessing as mp

    from trajzoo.mapmatching.fmm import build_matcher

    t0 = time.perf_counter()
    net, matcher = build_matcher(segments, params, ubodt, require_ubodt=True)
    t1 = time.perf_counter()
    kw = dict(max_candidates=params.max_candidates, candidate_search_radius=params.candidate_search_radius,
              gps_error=params.gps_error, reverse_tolerance=params.reverse_tolerance)
    _BARE.update(matcher=matcher, xyt=xyt, kw=kw, read=read)
    spans = [(i, min(i + chunk_size, len(xyt))) for i in range(0, len(xyt), chunk_size)]
    if workers > 1 and len(spans) > 1:
        with mp.get_context("fork").Pool(workers) as pool:  # the stage's pool: fork, imap, same spans
            for _ in pool.imap(_bare_span, spans):
                pass
    else:
        for span in spans:
            _bare_span(span)
    t2 = time.perf_counter()
    _BARE.clear()
    del matcher, net  # freeing the UBODT takes seconds; the stage pays it too
    return time.perf_counter() - t0, t2 - t1


def bench_map_matching(city: str, cfg: dict, workers: int, repeats: int = 1) -> dict:
    """The map-matching stage's GPS points/s against a bare fastmm loop's, side by side.

    Fair by construction, both sides with:

    - the same number of processes (``workers``: the stage's fork pool, and the same fork pool,
      ``imap`` and trip spans around the bare loop);
    - the same UBODT (the ``build_ubodt`` rule's file in ``results/<city>/ubodt``, loaded by both,
      neither builds it) and the same network (the city's segments.parquet);
    - the same trajectories (every trip of ``results/<city>/trips.parquet``; points/s counts the
      input GPS fixes on both sides; the bare loop matches all of them, the stage first collapses
      stationary fixes as it always does);
    - the same fastmm configuration (the city's ``map_matching`` config: max_candidates,
      candidate_search_radius, gps_error, reverse_tolerance; SHORTEST mode).

    Both timings include building the fastmm network and loading / freeing the UBODT. The bare
    loop's input (projected ``[x, y, t]`` lists) is prepared outside its timer, the stage's
    projection and table building inside: the comparison errs against the stage. ``repeats``
    alternates bare and stage runs and keeps each side's fastest (the machine is shared).

    Returns:
        dict with points, trips, workers, ubodt (file name), bare_points_per_s,
        bare_match_points_per_s (matching only), stage_points_per_s and ratio (stage / bare).
    """
    from trajzoo.mapmatching.fmm import MatchParams, match_trips, project_points, resolve_ubodt_delta, ubodt_file
    from trajzoo.mapmatching.fmm import build_fastmm_network

    res = REPO / "results" / city
    trips = pd.read_parquet(res / "trips.parquet")
    segments = pd.read_parquet(res / "roads/segments.parquet")
    ccfg = cfg["cities"][city]
    mm = dict(ccfg["map_matching"])
    mm["ubodt_delta"] = resolve_ubodt_delta(ccfg)[0]
    params = MatchParams.from_dict(mm)
    ubodt = res / "ubodt"
    found = ubodt_file(build_fastmm_network(segments), params, ubodt)
    if found is None:
        sys.exit(f"no UBODT for {city} at delta {params.ubodt_delta} m in {ubodt}: run "
                 f"`snakemake --cores 2 results/{city}/ubodt` first")
    n_points = int(trips["n_points"].sum())
    lon = np.concatenate(trips["lon"].to_numpy())
    lat = np.concatenate(trips["lat"].to_numpy())
    x, y = project_points(lon, lat, ccfg["crs"])
    bounds = np.cumsum([0] + [len(a) for a in trips["lon"]])
    xyt = [list(zip(x[a:b].tolist(), y[a:b].tolist(), np.asarray(t, dtype=float).tolist()))
           for a, b, t in zip(bounds[:-1], bounds[1:], trips["timestamps"])]
    chunk_size = int(np.clip(np.ceil(len(trips) / (8 * max(workers, 1))), 64, 4096))  # match_trips' default
    bare_total = bare_match = bare_read = stage = float("inf")
    for _ in range(repeats):
        total, only = _bare_loop(segments, params, ubodt, xyt, workers, chunk_size)
        bare_total, bare_match = min(bare_total, total), min(bare_match, only)
        bare_read = min(bare_read, _bare_loop(segments, params, ubodt, xyt, workers, chunk_size, read=True)[0])
        t0 = time.perf_counter()
        match_trips(trips, segments, ccfg["crs"], params, ubodt, workers=workers, progress=False, require_ubodt=True)
        stage = min(stage, time.perf_counter() - t0)
    print(f"[map matching] {city}: {len(trips)} trips, {n_points} GPS points, UBODT {found.name} "
          f"(delta {params.ubodt_delta:g} m), {workers} process(es) on both sides, fastmm SHORTEST "
          f"k={params.max_candidates} radius={params.candidate_search_radius:g} m gps_error={params.gps_error:g} m "
          f"reverse_tolerance={params.reverse_tolerance:g} m, best of {repeats}")
    print(f"  bare fastmm loop: {n_points / bare_total:,.0f} points/s with network build, UBODT load and free "
          f"({bare_total:.1f} s), {n_points / bare_match:,.0f} points/s matching only")
    print(f"  trajzoo stage (match_trips), same setup included: {n_points / stage:,.0f} points/s "
          f"({stage:.1f} s) -> {bare_total / stage:.2f}x the bare loop (target >= 0.9x)")
    print(f"  bare loop + reading each matched route out of fastmm's objects: {n_points / bare_read:,.0f} points/s "
          f"({bare_read:.1f} s) -> the stage is {bare_read / stage:.2f}x of that")
    return {"points": n_points, "trips": len(trips), "workers": workers, "ubodt": found.name,
            "bare_points_per_s": n_points / bare_total, "bare_match_points_per_s": n_points / bare_match,
            "bare_read_points_per_s": n_points / bare_read, "stage_points_per_s": n_points / stage,
            "ratio": bare_total / stage, "ratio_read": bare_read / stage}


def bench_training(city: str, cfg: dict, threads: int) -> None:
    from trajzoo.data.city import iterate_batches, load_city, trip_rows
    from trajzoo.registry import get_task
    from trajzoo.training.loop import FineTuneModel
    from trajzoo_metatrl.model import MetaTRLConfig
    from trajzoo_metatrl.objective import MetaTRLPretrainer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    res = REPO / "results" / city
    data = load_city(city, cfg["cities"][city]["timezone"], res / "matched.parquet", res / "splits.parquet",
                     res / "roads/structural.parquet", res / "roads/attributes.parquet",
                     res / "roads/transitions.parquet")
    mcfg = cfg["models"]["metatrl"]
    bs = mcfg["pretrain"]["batch_size"]
    model = MetaTRLPretrainer(data.graph.num_segments, int(data.graph.attributes.shape[1]),
                              MetaTRLConfig.from_dict(mcfg["hparams"]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rows = trip_rows(data.split("train"))
    gen = torch.Generator().manual_seed(0)
    n, t0 = 0, time.perf_counter()
    for i, (idx, batch) in enumerate(iterate_batches(rows, bs, shuffle=True, generator=gen)):
        if i == 20:
            break
        loss, _ = model.loss(batch, data.graph, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += len(idx)
    dt = time.perf_counter() - t0
    print(f"[training] {city}: N = {data.graph.num_segments} road segments, {threads} threads, "
          f"hparams {mcfg['hparams']}")
    print(f"  MetaTRL pretraining: {n / dt:,.1f} trajectories/s ({dt / max(i, 1) * 1000:.0f} ms per batch of {bs})")
    task = get_task("tte")
    td = task.prepare(data)
    ft = FineTuneModel(model.encoder, 1)
    opt = torch.optim.AdamW(ft.parameters(), lr=1e-3)
    n, t0 = 0, time.perf_counter()
    for i, (idx, batch) in enumerate(iterate_batches(td.rows["train"], mcfg["finetune"]["batch_size"], shuffle=True,
                                                     generator=gen)):
        if i == 20:
            break
        out = ft(task.input_view(batch), data.graph)
        loss = torch.nn.functional.mse_loss(out.squeeze(-1), torch.as_tensor(td.labels["train"][idx.numpy()]).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += len(idx)
    dt = time.perf_counter() - t0
    print(f"  fine-tuning (TTE): {n / dt:,.1f} trajectories/s")


def bench_main_job(cores: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="trajzoo-main-job-"))
    shutil.copy(REPO / "config.yaml", work / "config.yaml")
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["data_root"] = str((REPO / cfg["data_root"]).resolve())
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(work), "--cores", str(cores), "results/porto/metatrl.csv"],
                          capture_output=True, text=True)
    dt = time.perf_counter() - t0
    status = "ok" if proc.returncode == 0 else f"FAILED ({proc.returncode}); see {work}/logs"
    print(f"[main job] cold `snakemake --cores {cores} results/porto/metatrl.csv`: {dt / 60:.1f} min, {status} "
          "(target <= 20 min on 2 cores)")
    if proc.returncode == 0:
        shutil.rmtree(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--city", default="porto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--main-job", action="store_true", help="also time the cold main job")
    parser.add_argument("--repeats", type=int, default=1, help="map matching: alternate bare/stage runs, keep the best")
    args = parser.parse_args()
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    if not (REPO / "results" / args.city / "matched.parquet").exists():
        sys.exit(f"run the pipeline for {args.city} first (results/{args.city}/matched.parquet is missing)")
    for city in sorted({args.city, *cfg["models"]["metatrl"]["sources"]}):
        if (REPO / "results" / city / "trips.parquet").exists():
            bench_map_matching(city, cfg, args.workers, args.repeats)
    bench_training(args.city, cfg, args.workers)
    if args.main_job:
        bench_main_job(args.workers)


if __name__ == "__main__":
    main()
