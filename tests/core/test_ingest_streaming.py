"""The vectorised Porto block decoder equals the row-by-row one; TripIds keeps its id rules."""
from __future__ import annotations

import lzma
import time

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from trajzoo.ingest import porto
from trajzoo.ingest.filters import TripIds


def _block(data_root, extra: list[str]) -> pa.Table:
    with lzma.open(data_root / "porto/train.csv.xz", "rt") as f:
        lines = [next(f) for _ in range(201)]
    header, rows = lines[0], lines[1:]
    # bad rows spread through a block of real rows: each kind of row the fast path must leave alone
    for k, line in enumerate(extra):
        rows.insert(20 * k + 3, line)
    text = (header + "".join(rows)).encode()
    return pacsv.read_csv(pa.BufferReader(text), convert_options=pacsv.ConvertOptions(
        column_types={c: pa.string() for c in porto.PORTO_COLUMNS}))


BAD_ROWS = [
    '"X1","C","","","20000380","1372636853","A","False","[]"\n',                          # empty polyline
    '"X2","C","","","20000380","1372636853","A","False","[[-8.61,41.14],[-8.61]]"\n',     # not a pair
    '"X3","C","","","20000380","1372636853","A","False","[-8.61,41.14,-8.62,41.15]"\n',   # flat list
    '"X4","C","","","20000380","1372636853","A","False","[[-8.61,null],[-8.62,41.15]]"\n',  # null value
    '"X5","Z","","","20000380","1372636853","A","False","[[-8.61,41.14]]"\n',             # call type
    '"  ","C","","","20000380","1372636853","A","False","[[-8.61,41.14]]"\n',             # blank id
    '"X7","C","","","20000380","13726e","A","False","[[-8.61,41.14]]"\n',                 # timestamp
    '"X8","C","","","20000380","-9223372036854775808","A","False","[[-8.61,41.14]]"\n',   # int64 min
    '"X9","C","","","20000380","1372636853","A","False","not json"\n',
]


def test_block_decoder_equals_row_by_row(data_root):
    block = _block(data_root, BAD_ROWS)
    with duckdb.connect() as con:
        fast_trips, fast_rej = porto.decode_block(con, block, 1)
        slow_trips, slow_rej = porto._decode_rows(con, block, np.arange(1, block.num_rows + 1))
    assert list(fast_trips.columns) == list(slow_trips.columns) and len(fast_trips) == len(slow_trips) == 201
    for col in fast_trips.columns:
        assert fast_trips[col].dtype == slow_trips[col].dtype, col
        for a, b in zip(fast_trips[col], slow_trips[col]):
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), col
            else:
                assert a == b or (a is None and b is None), (col, a, b)
    assert fast_rej.reset_index(drop=True).equals(slow_rej.reset_index(drop=True))
    assert list(fast_rej["reason"]) == ["empty_polyline", "polyline_point_not_lon_lat_pair",
                                        "polyline_not_list_of_pairs", "invalid_call_type", "empty_trip_id",
                                        "timestamp_not_integer", "timestamp_out_of_range", "polyline_not_json"]


def test_trip_ids_rename_and_repeat():
    ids = TripIds()
    assert ids.assign("a", b"1") == "a"
    assert ids.assign("a", b"1") is None          # exact repeat
    assert ids.assign("a", b"2") == "a_2"         # another trip under a kept id
    assert ids.assign("a", b"2") is None
    assert ids.assign("a_3", b"9") == "a_3"       # an id of the file taken before a rename needs it
    assert ids.assign("a", b"3") == "a_4"
    assert ids.n_renamed == 2


class _DictTripIds:
    """The rules of TripIds with every kept id in one dict (its storage before the NumPy runs)."""

    def __init__(self):
        self.prints, self.derived, self.n_renamed = {}, set(), 0

    def assign(self, trip_id, fp):
        prints = self.prints.setdefault(trip_id, set())
        if not prints:
            prints.add(fp)
            return trip_id
        if fp in prints:
            return None
        prints.add(fp)
        k = 2
        while f"{trip_id}_{k}" in self.prints or f"{trip_id}_{k}" in self.derived:
            k += 1
        self.derived.add(f"{trip_id}_{k}")
        self.n_renamed += 1
        return f"{trip_id}_{k}"


def test_trip_ids_runs_follow_the_dict_rules():
    """Across many blocks (prefetch, assign, compact: the ids move into merged NumPy runs) every
    assignment equals that of one dict of every kept id: repeats of trips kept blocks earlier
    are found, renamed ids skip ids taken in earlier blocks."""
    rng = np.random.default_rng(0)
    ids, ref = TripIds(), _DictTripIds()
    names = [f"{i}" for i in range(400)] + [f"{i}_2" for i in range(0, 400, 7)]
    got, want = [], []
    for _ in range(60):  # 60 blocks of 50 trips: ids and trips repeat within and across blocks
        block = [(str(rng.choice(names)), int(rng.integers(0, 3)).to_bytes(16, "little")) for _ in range(50)]
        ids.prefetch(t for t, _ in block)
        for t, fp in block:
            got.append(ids.assign(t, fp))
            want.append(ref.assign(t, fp))
        ids.compact()
    assert got == want and ids.n_renamed == ref.n_renamed
    assert None in got and ids.n_renamed > 100 and len(ids._runs) > 1  # repeats, renames, several runs


def test_read_gate_bounds_the_csv_read_ahead(data_root, tmp_path, monkeypatch):
    """pyarrow's streaming CSV reader reads up to 32 blocks ahead of the batches taken; through
    :class:`porto.ReadGate` it reads at most READ_AHEAD_BLOCKS beyond them (the first batch
    needs two reads), however slowly the blocks are consumed, and closing the stream midway
    releases the reader."""
    with lzma.open(data_root / "porto/train.csv.xz", "rt", encoding="utf-8", newline="") as f:
        text = f.read()
    header, body = text.split("\n", 1)
    path = tmp_path / "train.csv"
    path.write_text(header + "\n" + body * 3, encoding="utf-8")  # ~9 MB: ~140 blocks of 64 KB
    reads = []

    class Counting(porto.LineCounter):
        def read(self, n=-1):
            reads.append(n)
            return super().read(n)

    monkeypatch.setattr(porto, "LineCounter", Counting)
    blocks = porto.read_porto_trips(path, block_size=1 << 16)
    ahead = []
    for k, (trips, rej) in enumerate(blocks):
        time.sleep(0.02)  # a slow consumer: an ungated reader runs ahead meanwhile
        ahead.append(len(reads) - (k + 1))
        if k == 40:
            break
    blocks.close()
    assert max(ahead) <= porto.READ_AHEAD_BLOCKS, ahead


def test_read_gate_never_holds_back_a_needed_read(data_root, tmp_path, monkeypatch):
    """Blocks holding only blank lines (empty batches), a last row without a newline: the gated
    reader gives the rows pyarrow's whole-file reader gives, and never needs the grace reads
    that keep an unforeseen reader from getting stuck."""
    with lzma.open(data_root / "porto/train.csv.xz", "rt", encoding="utf-8", newline="") as f:
        lines = [next(f) for _ in range(301)]
    text = lines[0] + "".join(lines[1:151]) + "\n" * 20_000 + "\r\n" * 9_000 + "".join(lines[151:]).rstrip("\n")
    path = tmp_path / "train.csv"
    path.write_bytes(text.encode())
    gates = []

    class Recorded(porto.ReadGate):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            gates.append(self)

    monkeypatch.setattr(porto, "ReadGate", Recorded)
    counts = {}
    blocks = list(porto.read_porto_trips(path, block_size=1 << 12, counts=counts))
    whole = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={c: pa.string() for c in porto.PORTO_COLUMNS}))
    got = [t for trips, rej in blocks for t in trips["trip_id"]] + [t for _, rej in blocks for t in rej["trip_id"]]
    assert sorted(got) == sorted(whole["TRIP_ID"].to_pylist()) and counts["records_read"] == 300
    assert sum(len(t) + len(r) == 0 for t, r in blocks) >= 5  # the blank blocks: empty batches
    assert len(gates) == 1 and gates[0].extra_reads == 0
