"""The vectorised Porto block decoder equals the row-by-row one; TripIds keeps its id rules."""
from __future__ import annotations

import lzma

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
