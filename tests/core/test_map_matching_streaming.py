"""Streamed map matching (issue 14, "Full-size data") writes exactly the tables of the in-memory stage.

On the first 314 real San Francisco trips (a trips.parquet with several row groups), the old path --
``match_trips`` on the whole slice in memory, the tables written with ``to_parquet`` and the QC of
``stage_counts`` + ``quality_rows`` -- is compared with the streamed one: two chunk jobs matching
in batches of about 200 GPS fixes (many batches per chunk, batches cutting across row
groups; one chunk with 2 worker processes) appended with ParquetWriter, then the streamed gather.
Files, Arrow schemas (pandas metadata included) and QC text must be identical.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trajzoo.ingest import ingest_city_to_parquet
from trajzoo.mapmatching.chunks import (chunk_output_schemas, gather_chunk_files, interval_quantile, iter_trip_batches,
                                        match_chunk, read_trip_rows, trip_chunk_range)
from trajzoo.mapmatching.fmm import MatchParams, build_ubodt, match_trips
from trajzoo.mapmatching.quality import quality_rows
from trajzoo.qc import AccountingError, stage_counts

SF = {"trajectories": {"format": "cabspotting", "path": "sanfrancisco/cabspottingdata_north_14d.tar.xz"},
      "bbox": [-122.49, 37.775, -122.39, 37.815],
      "filters": {"min_points": 5, "max_points": 400, "max_speed_mps": 50}, "caps": {"max_trips": 800}}
CRS = "EPSG:32610"
PARAMS = MatchParams(ubodt_delta=1500)
BATCH_POINTS = 200  # about 20 trips per batch: several batches per chunk and per row group
TABLES = ("matched", "stats", "rejections")


@pytest.fixture(scope="module")
def sf(data_root, real_road_network, tmp_path_factory):
    work = tmp_path_factory.mktemp("streaming")
    seg, _ = real_road_network("sanfrancisco/osm/sf_north.osm.bz2", CRS)
    ingest_city_to_parquet(SF, data_root, work / "ingest.parquet", work / "ingest_rej.parquet")
    # rewritten in row groups of 97 trips (ingest writes one per streamed block, here one): chunks and
    # batches cut across row groups
    pq.write_table(pq.read_table(work / "ingest.parquet"), work / "trips.parquet", row_group_size=97)
    build_ubodt(seg, PARAMS, work / "ubodt")
    return work, seg


@pytest.fixture(scope="module")
def in_memory(sf):
    """The old path: the whole slice matched at once in memory, written as the rules did."""
    work, seg = sf
    trips = pd.read_parquet(work / "trips.parquet")
    m, s, r = match_trips(trips, seg, CRS, PARAMS, work / "ubodt", workers=1, progress=False)
    out = work / "one"
    out.mkdir()
    for name, df in zip(TABLES, (m, s, r)):
        df.to_parquet(out / f"{name}.parquet", index=False)
    qc = pd.concat([stage_counts("map_matching", len(trips), len(m), r["reason"]), quality_rows(s)], ignore_index=True)
    qc.to_csv(out / "qc.csv", index=False)
    return out, trips, (m, s, r)


def stream(work, seg, name, n_chunks=2, order=None):
    """Chunk jobs (chunk 1 with 2 workers) in batches of BATCH_POINTS fixes; their files in chunk order."""
    parts = {t: [] for t in TABLES}
    counts = []
    for i in range(n_chunks):
        paths = [work / f"{name}-{t}-{i + 1}-of-{n_chunks}.parquet" for t in TABLES]
        counts.append(match_chunk(work / "trips.parquet", seg, CRS, PARAMS, work / "ubodt", i, n_chunks, *paths,
                                  workers=2 if i == 1 else 1, progress=False, batch_points=BATCH_POINTS))
        for t, p in zip(TABLES, paths):
            parts[t].append(p)
    if order is not None:
        parts = {t: [files[i] for i in order] for t, files in parts.items()}
    return parts, counts


def read(path):
    return pd.read_parquet(path)


def test_slice_is_a_real_test(sf, in_memory):
    """Several row groups, kept trips and rejections of several reasons, many batches per chunk."""
    work, _ = sf
    _, trips, (m, s, r) = in_memory
    assert 250 <= len(trips) <= 400 and pq.ParquetFile(work / "trips.parquet").metadata.num_row_groups >= 3
    assert len(m) > 0.5 * len(trips) and len(set(r["reason"])) >= 2
    assert trips["n_points"].sum() > 10 * BATCH_POINTS


def test_streamed_chunks_and_gather_equal_the_in_memory_stage(sf, in_memory):
    work, seg = sf
    one, trips, _ = in_memory
    parts, counts = stream(work, seg, "s")
    assert all(c["batches"] >= 5 for c in counts)
    assert sum(c["trips"] for c in counts) == len(trips)
    assert all(pq.ParquetFile(p).metadata.num_row_groups == c["batches"] for p, c in zip(parts["matched"], counts))
    many = work / "many"
    many.mkdir()
    out = [many / f"{t}.parquet" for t in TABLES]
    qc, tally = gather_chunk_files(parts["matched"], parts["stats"], parts["rejections"], work / "trips.parquet", *out)
    qc.to_csv(many / "qc.csv", index=False)
    for t, path in zip(TABLES, out):
        assert pq.read_schema(path).equals(pq.read_schema(one / f"{t}.parquet"), check_metadata=True), t
        pd.testing.assert_frame_equal(read(path), read(one / f"{t}.parquet"), check_exact=True, obj=t)
    assert (many / "qc.csv").read_text() == (one / "qc.csv").read_text()
    stats = read(one / "stats.parquet")
    assert tally.points == stats["n_points"].sum() and tally.matched_points == stats["matched_points"].sum()
    assert not list(many.glob("*.part"))


def test_each_chunk_file_equals_match_trips_on_its_rows(sf):
    """A chunk's streamed files = match_trips on read_trip_rows of its range, file by file."""
    work, seg = sf
    parts, _ = stream(work, seg, "c", n_chunks=3)
    for i in range(3):
        trips = read_trip_rows(work / "trips.parquet", *trip_chunk_range(work / "trips.parquet", i, 3))
        for t, df in zip(TABLES, match_trips(trips, seg, CRS, PARAMS, work / "ubodt", progress=False)):
            df.to_parquet(work / "ref.parquet", index=False)
            assert pq.read_schema(parts[t][i]).equals(pq.read_schema(work / "ref.parquet"), check_metadata=True)
            pd.testing.assert_frame_equal(read(parts[t][i]), read(work / "ref.parquet"), check_exact=True)


@pytest.mark.parametrize("batch_points", [1, 500, 10_000_000])
def test_batches_concatenate_to_the_rows(sf, batch_points):
    work, _ = sf
    path = work / "trips.parquet"
    n = pq.ParquetFile(path).metadata.num_rows
    for start, stop in ((0, n), (37, 215), (n, n)):
        batches = list(iter_trip_batches(path, start, stop, batch_points))
        whole = read_trip_rows(path, start, stop)
        if start == stop:
            assert batches == []
            continue
        pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), whole, check_exact=True)
        sizes = [int(b["lon"].map(len).sum()) for b in batches]
        assert all(s <= batch_points or len(b) == 1 for s, b in zip(sizes, batches))
    with pytest.raises(ValueError, match="batch_points"):
        next(iter_trip_batches(path, 0, n, 0))


def test_schemas_do_not_depend_on_a_batch_contents(sf):
    """A batch where no trip is kept still writes roads / enter_times as lists of int64 / double."""
    work, _ = sf
    matched, stats, rejections = chunk_output_schemas(pq.read_schema(work / "trips.parquet"))
    assert matched.field("roads").type == pa.list_(pa.int64())
    assert matched.field("enter_times").type == pa.list_(pa.float64())
    assert stats.field("reason").type == pa.large_string() and rejections.field("reason").type == pa.large_string()


def test_gather_rejects_reordered_chunks_and_writes_nothing(sf):
    work, seg = sf
    parts, _ = stream(work, seg, "r", order=[1, 0])
    out = [work / f"reordered-{t}.parquet" for t in TABLES]
    with pytest.raises(AccountingError, match="not in its order: row 0"):
        gather_chunk_files(parts["matched"], parts["stats"], parts["rejections"], work / "trips.parquet", *out)
    assert not any(p.exists() for p in out) and not list(work.glob("reordered-*.part"))


def test_interval_quantile_streamed_equals_numpy(tmp_path):
    """Unit case (synthetic timestamps): the row-group tally gives np.quantile's interpolated value,
    and the step from one trip's last fix to the next trip's first is not an interval."""
    rng = np.random.default_rng(0)
    trips = [np.cumsum(rng.integers(1, 90, size=int(n))) + 10_000 * i for i, n in enumerate(rng.integers(1, 30, 200))]
    pq.write_table(pa.table({"timestamps": trips}), tmp_path / "t.parquet", row_group_size=37)
    steps = np.concatenate([np.diff(t) for t in trips]).astype(np.float64)
    for q in (0.0, 0.13, 0.5, 0.9, 0.999, 1.0):
        assert interval_quantile(tmp_path / "t.parquet", q) == pytest.approx(float(np.quantile(steps, q)), rel=1e-12)
    pq.write_table(pa.table({"timestamps": [np.array([5])]}), tmp_path / "one.parquet")
    assert np.isnan(interval_quantile(tmp_path / "one.parquet"))
