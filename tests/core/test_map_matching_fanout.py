"""Map matching fanned out over N chunks (scatter/gather) equals the unchunked stage, on real Porto trips.

The library test runs the chunk and gather functions the rules call on about 390 real Porto trips (the first 600 rows, filtered)
(a trips.parquet with several row groups, so chunks cut across them); the workflow test runs the
rules themselves with ``--set-scatter map_match=3`` and compares against ``match_trips`` on all
trips at once.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from e2e_support import snakemake
from trajzoo.ingest import ingest_city_to_parquet
from trajzoo.mapmatching.chunks import (chunk_row_ranges, gather_chunk_files, match_chunk, parse_scatter_item,
                                        read_trip_rows)
from trajzoo.mapmatching.fmm import MatchParams, UBODTMissingError, build_ubodt, match_trips
from trajzoo.mapmatching.quality import quality_rows
from trajzoo.qc import AccountingError, stage_counts

PORTO = {"trajectories": {"format": "porto_csv", "path": "porto/train.csv.xz"},
         "bbox": [-8.70, 41.13, -8.54, 41.195],
         "filters": {"min_points": 5, "max_points": 400, "max_speed_mps": 50}, "caps": {"max_trips": 600}}
CRS = "EPSG:32629"
PARAMS = MatchParams(ubodt_delta=1000)


@pytest.fixture(scope="module")
def porto(data_root, real_road_network, tmp_path_factory):
    work = tmp_path_factory.mktemp("fanout")
    seg, _ = real_road_network("porto/osm/porto_center.osm.bz2", CRS)
    # 64 KiB blocks: the trips file gets several row groups, which the chunks cut across
    ingest_city_to_parquet(PORTO, data_root, work / "trips.parquet", work / "ingest_rej.parquet",
                           porto_block_bytes=1 << 16)
    build_ubodt(seg, PARAMS, work / "ubodt")
    return work, seg


def assert_same_parquet(a, b):
    assert pq.read_schema(a).remove_metadata().equals(pq.read_schema(b).remove_metadata())
    left, right = pd.read_parquet(a), pd.read_parquet(b)
    arrays = [c for c in left.columns if c in ("roads", "enter_times")]
    pd.testing.assert_frame_equal(left.drop(columns=arrays), right.drop(columns=arrays))
    for col in arrays:
        assert all(np.array_equal(x, y) for x, y in zip(left[col], right[col])), col


def test_scatter_item_and_ranges():
    assert parse_scatter_item("1-of-2") == (0, 2) and parse_scatter_item("16-of-16") == (15, 16)
    for bad in ("0-of-2", "3-of-2", "2of3", ""):
        with pytest.raises(ValueError):
            parse_scatter_item(bad)
    pts = np.array([10, 10, 10, 10, 40])
    assert chunk_row_ranges(pts, 1) == [(0, 5)]
    assert chunk_row_ranges(pts, 2) == [(0, 4), (4, 5)]  # 40 and 40 points
    many = chunk_row_ranges(pts, 8)  # more chunks than trips: some are empty, all tile 0..5 in order
    assert len(many) == 8 and many[0][0] == 0 and many[-1][1] == 5
    assert all(a[1] == b[0] for a, b in zip(many[:-1], many[1:]))
    assert chunk_row_ranges(np.zeros(0, dtype=int), 3) == [(0, 0)] * 3


def test_read_trip_rows_equals_slicing(porto):
    work, _ = porto
    path = work / "trips.parquet"
    assert pq.ParquetFile(path).metadata.num_row_groups > 2
    whole = pd.read_parquet(path)
    for start, stop in ((0, 1), (37, 215), (150, len(whole)), (len(whole), len(whole))):
        part = read_trip_rows(path, start, stop)
        assert part["trip_id"].tolist() == whole["trip_id"].iloc[start:stop].tolist()
        assert all(np.array_equal(a, b) for a, b in zip(part["lon"], whole["lon"].iloc[start:stop]))


@pytest.mark.parametrize("n_chunks", [3])
def test_gathered_chunks_equal_the_unchunked_stage(porto, n_chunks):
    work, seg = porto
    trips_path, ubodt = work / "trips.parquet", work / "ubodt"
    trips = pd.read_parquet(trips_path)
    assert 300 < len(trips) < 500
    ubodt_files = sorted(p.name for p in ubodt.iterdir())

    # the unchunked stage, as the map_match rule ran before the fan-out
    one = work / "one"
    one.mkdir()
    m, s, r = match_trips(trips, seg, CRS, PARAMS, ubodt, workers=1, progress=False)
    qc = pd.concat([stage_counts("map_matching", len(trips), len(m), r["reason"]), quality_rows(s)], ignore_index=True)
    for name, df in (("matched", m), ("stats", s), ("rejections", r)):
        df.to_parquet(one / f"{name}.parquet", index=False)
    qc.to_csv(one / "qc.csv", index=False)
    assert len(r) > 0 and len(m) > 0.5 * len(trips)  # both outcomes occur: the comparison means something

    # N chunk jobs (the second one with 2 worker processes) and the gather, streamed to Parquet
    parts = {"matched": [], "stats": [], "rejections": []}
    for i in range(n_chunks):
        paths = [work / f"{name}-{i + 1}-of-{n_chunks}.parquet" for name in parts]
        counts = match_chunk(trips_path, seg, CRS, PARAMS, ubodt, i, n_chunks, *paths, workers=2 if i == 1 else 1,
                             progress=False)
        assert 0 < counts["trips"] < len(trips)
        for name, path in zip(parts, paths):
            parts[name].append(path)
    many = work / "many"
    many.mkdir()
    gqc, _ = gather_chunk_files(parts["matched"], parts["stats"], parts["rejections"], trips_path,
                                *(many / f"{name}.parquet" for name in parts))
    gqc.to_csv(many / "qc.csv", index=False)

    for name in ("matched", "stats", "rejections"):
        assert_same_parquet(one / f"{name}.parquet", many / f"{name}.parquet")
    assert (one / "qc.csv").read_text() == (many / "qc.csv").read_text()
    assert sorted(p.name for p in ubodt.iterdir()) == ubodt_files  # no chunk built another UBODT


def test_gather_counts_lost_or_repeated_trips(porto):
    work, _ = porto
    stats = pd.DataFrame({"trip_id": ["a", "b"], "reason": [None, "fmm_split"]})
    matched = pd.DataFrame({"trip_id": ["a"]})
    rej = stats.iloc[[1]][["trip_id", "reason"]]
    paths = {}
    for name, df in (("matched", matched), ("stats", stats), ("rejections", rej)):
        paths[name] = work / f"acct-{name}.parquet"
        df.to_parquet(paths[name], index=False)
    with pytest.raises(AccountingError, match="the chunks hold 2 trip"):  # a chunk lost a trip
        gather_chunk_files([paths["matched"]], [paths["stats"]], [paths["rejections"]], _trips_of(work, 3),
                           *_outs(work))
    with pytest.raises(AccountingError, match="2 repeated"):  # the same chunk gathered twice
        gather_chunk_files([paths["matched"]] * 2, [paths["stats"]] * 2, [paths["rejections"]] * 2,
                           _trips_of(work, 4), *_outs(work))
    assert not any(p.exists() for p in _outs(work))  # an accounting error writes nothing


def _outs(work):
    return [work / f"acct-out-{name}.parquet" for name in ("matched", "stats", "rejections")]


def _trips_of(work, n):
    path = work / f"trips{n}.parquet"
    pd.read_parquet(work / "trips.parquet").iloc[:n].to_parquet(path, index=False)
    return path


def test_a_chunk_never_builds_the_ubodt(porto, tmp_path):
    work, seg = porto
    with pytest.raises(UBODTMissingError, match="build_ubodt"):
        match_chunk(work / "trips.parquet", seg, CRS, PARAMS, tmp_path, 0, 2,
                    *(tmp_path / f"{name}.parquet" for name in ("matched", "stats", "rejections")), progress=False)
    assert not any(tmp_path.iterdir())


def test_workflow_scatter_gather_equals_unchunked(repo, data_root, tmp_path):
    """The rules: build_ubodt once, map_match_chunk x 3 (--set-scatter), map_match gathers."""
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    cfg["data_root"] = str(data_root)
    # only Porto and one experiment on it; nothing else concerns map matching
    cfg["cities"] = {"porto": cfg["cities"]["porto"]}
    cfg["experiments"]["runs"] = [{"models": ["metatrl"], "targets": ["porto"], "settings": ["in-city"]}]
    cfg["cities"]["porto"]["caps"]["max_trips"] = 300
    cfg["cities"]["porto"]["map_matching"]["ubodt_delta"] = 1000
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(repo, tmp_path, "results/porto/matched.parquet", "--configfile", str(tmp_path / "config.yaml"),
                     "--set-scatter", "map_match=3", timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = tmp_path / "results/porto"
    chunk_logs = sorted(p.name for p in (tmp_path / "logs/porto/map_match_chunk").glob("*.log"))
    assert chunk_logs == ["1-of-3.log", "2-of-3.log", "3-of-3.log"]
    assert len(list((res / "ubodt").glob("ubodt_*.bin"))) == 1
    assert not (res / "map_matching").exists() or not any((res / "map_matching").rglob("*.parquet"))  # temp()

    trips = pd.read_parquet(res / "trips.parquet")
    seg = pd.read_parquet(res / "roads/segments.parquet")
    m, s, r = match_trips(trips, seg, CRS, MatchParams.from_dict(cfg["cities"]["porto"]["map_matching"]),
                          res / "ubodt", workers=1, progress=False, require_ubodt=True)
    qc = pd.concat([stage_counts("map_matching", len(trips), len(m), r["reason"]), quality_rows(s)], ignore_index=True)
    one = tmp_path / "one"
    one.mkdir()
    for name, df in (("matched", m), ("map_matching_stats", s), ("map_matching_rejections", r)):
        df.to_parquet(one / f"{name}.parquet", index=False)
    assert_same_parquet(one / "matched.parquet", res / "matched.parquet")
    assert_same_parquet(one / "map_matching_stats.parquet", res / "qc/map_matching_stats.parquet")
    assert_same_parquet(one / "map_matching_rejections.parquet", res / "qc/map_matching_rejections.parquet")
    assert pd.read_csv(res / "qc/map_matching.csv").equals(qc)
