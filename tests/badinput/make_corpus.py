"""Write the bad-input corpus (``tests/badinput/corpus/``) from slices of the real data files.

Every corpus file is a few real rows, fixes, OSM elements or config keys, copied from the read-only
data mirror (``../shared/data``, see its README) or from ``config.yaml``, with one named defect
put in. Nothing is invented except the defect itself. The script is deterministic (fixed row
numbers, fixed cut points, gzip mtime 0, fixed tar headers): running it again writes the same
bytes, which ``test_bad_input.py::test_corpus_is_what_make_corpus_writes`` checks.

    python tests/badinput/make_corpus.py                      # writes tests/badinput/corpus/
    python tests/badinput/make_corpus.py --out /tmp/corpus    # somewhere else

Sources (paths relative to the data root):

- ``porto/train.csv.xz``: ECML/PKDD 2015 train.csv; "row N" below is the 1-based DATA row (the
  header is line 1, data row N is line N+1). Lines end in CRLF as in the original file.
- ``sanfrancisco/cabspottingdata_north_14d.tar.xz``: Cabspotting (every fix, free and occupied);
  lines 8556-8597 of ``new_abboip.txt`` (42 fixes, newest first: three fares, the two newest
  separated by a single free fix), and the whole file ``new_idjojwa.txt`` (for the truncated
  archive).
- ``porto/osm/porto_center.osm.bz2``: OSM XML; residential ways 23393871, 23393876, 35084624
  (three two-way streets around node 253283034) and four pedestrian/footway ways.

``corpus/MANIFEST.md`` lists every file, how it was derived and the outcome the tests expect.
"""
from __future__ import annotations

import argparse
import bz2
import csv
import gzip
import io
import lzma
import tarfile
from pathlib import Path
from xml.etree.ElementTree import iterparse, tostring

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_DATA_ROOT = REPO.parent / "shared" / "data"

PORTO_CSV = "porto/train.csv.xz"
CAB_TAR = "sanfrancisco/cabspottingdata_north_14d.tar.xz"
PORTO_OSM = "porto/osm/porto_center.osm.bz2"
CABS = ("abcoij", "idjojwa")  # only the second is used (whole, in the truncated archive)
#: The cab file and the 1-based line range (newest first, as published) of the cab kinds.
CAB_SLICE = ("abboip", 8556, 8597)
#: Two-way residential streets sharing node 253283034 (a small strongly connected network).
DRIVABLE_WAYS = (23393871, 23393876, 35084624)
#: Pedestrian and footway ways: nothing osmnx's "drive" filter keeps.
FOOT_WAYS = (26119759, 26207859, 14202900, 27103823)
#: Node of way 23393876 removed from the "missing nodes" extract.
REMOVED_NODE = 3570147018

#: Real data rows used (1-based data rows of porto/train.csv.xz), checked below.
ROW_OK = (1, 3, 4, 7)        # ordinary trips inside the bbox that pass every filter
ROW_TELEPORT = 2             # a real 148 m/s GPS jump inside the bbox
ROW_SINGLE_POINT = 132       # a real one-point POLYLINE
ROW_EMPTY_POLYLINE = 853     # a real "[]" POLYLINE
ROW_FAR_OUTSIDE = 2381       # a real trip 40-50 km north of Porto (all 172 points outside the bbox)


class Corpus:
    """Collects the corpus files and their manifest lines."""

    def __init__(self, out: Path):
        self.out = out
        self.manifest: list[tuple[str, str, str]] = []

    def write(self, name: str, data: bytes, derived: str, expected: str) -> None:
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.manifest.append((name, derived, expected))

    def write_manifest(self) -> None:
        lines = ["# Bad-input corpus", "",
                 "Written by `tests/badinput/make_corpus.py` from slices of the real data in "
                 "`../shared/data` (see that script's docstring); tested by "
                 "`tests/badinput/test_bad_input.py`. Porto rows are 1-based data rows of "
                 "`porto/train.csv.xz`.", "",
                 "| file | derived from | expected outcome |", "|---|---|---|"]
        for name, derived, expected in self.manifest:
            lines.append(f"| `{name}` | {derived} | {expected} |")
        (self.out / "MANIFEST.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# Porto train.csv


def porto_lines(data_root: Path) -> tuple[bytes, list[bytes]]:
    """The header line and every data line of the real train.csv, as bytes with their CRLF."""
    raw = lzma.decompress((data_root / PORTO_CSV).read_bytes())
    lines = raw.split(b"\n")
    assert lines[-1] == b""
    lines = [line + b"\n" for line in lines[:-1]]
    return lines[0], lines[1:]


def fields(line: bytes) -> list[str]:
    return next(csv.reader([line.decode("utf-8")]))


def join(values: list[str], delimiter: str = ",") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n", delimiter=delimiter).writerow(values)
    return buf.getvalue().encode("utf-8")


def with_polyline(line: bytes, polyline: str) -> bytes:
    values = fields(line)
    values[8] = polyline
    return join(values)


def points(line: bytes) -> list[list[float]]:
    import json

    return json.loads(fields(line)[8])


def polyline_text(pts: list[list]) -> str:
    """JSON text of a point list in the file's own style (no spaces, NaN/null written as given)."""
    return "[" + ",".join(f"[{p[0]},{p[1]}]" for p in pts) + "]"


def check_real_rows(rows: list[bytes]) -> None:
    """Assert the real rows are what the corpus descriptions say they are."""
    import numpy as np

    from trajzoo.ingest.filters import haversine_m

    bbox = [-8.70, 41.13, -8.54, 41.195]
    for r in rows:  # every line re-serialises byte for byte
        assert join(fields(r)) == r
    for n in ROW_OK + (ROW_TELEPORT,):
        p = np.asarray(points(rows[n - 1]))
        assert len(p) >= 5 and ((p[:, 0] > bbox[0]) & (p[:, 0] < bbox[2]) & (p[:, 1] > bbox[1]) & (p[:, 1] < bbox[3])).all()
    p = np.asarray(points(rows[ROW_TELEPORT - 1]))
    speed = haversine_m(p[:-1, 0], p[:-1, 1], p[1:, 0], p[1:, 1]) / 15
    assert speed.max() > 60, speed.max()
    assert len(points(rows[ROW_SINGLE_POINT - 1])) == 1
    assert fields(rows[ROW_EMPTY_POLYLINE - 1])[8] == "[]"
    p = np.asarray(points(rows[ROW_FAR_OUTSIDE - 1]))
    assert (p[:, 1] > bbox[3] + 0.2).all()  # every point > 20 km north of the bbox


def make_porto(c: Corpus, data_root: Path) -> None:
    header, rows = porto_lines(data_root)
    check_real_rows(rows)
    r = {n: rows[n - 1] for n in (*ROW_OK, ROW_TELEPORT, ROW_SINGLE_POINT, ROW_EMPTY_POLYLINE,
                                  ROW_FAR_OUTSIDE)}
    r1, r3, r4, r7 = (r[n] for n in ROW_OK)

    def csv_file(name, lines, derived, expected):
        c.write(name, header + b"".join(lines), derived, expected)

    cut = fields(r3)[8][:100]
    csv_file("porto_polyline_not_json.csv", [r1, with_polyline(r3, cut), r4],
             "rows 1, 3, 4; row 3's POLYLINE cut after 100 characters (unterminated JSON)",
             "rejected `polyline_not_json` at row 2; in 3 = kept 2 + rejected 1")
    csv_file("porto_empty_polyline.csv", [r1, r[ROW_EMPTY_POLYLINE], r3, with_polyline(r4, "")],
             f"rows 1, {ROW_EMPTY_POLYLINE} (real `[]` POLYLINE), 3, 4 with POLYLINE emptied to `\"\"`",
             "rejected `empty_polyline` at rows 2 and 4; in 4 = kept 2 + rejected 2")
    csv_file("porto_single_point.csv", [r1, r[ROW_SINGLE_POINT], r3],
             f"rows 1, {ROW_SINGLE_POINT} (real one-point POLYLINE), 3",
             "rejected `too_few_points` at row 2; in 3 = kept 2 + rejected 1")

    nan_pts = points(r3)
    nan_pts[4] = [nan_pts[4][0], "NaN"]
    null_pts = points(r4)
    null_pts[0] = ["null", null_pts[0][1]]
    csv_file("porto_nan_coordinate.csv", [r1, with_polyline(r3, polyline_text(nan_pts)),
                                         with_polyline(r4, polyline_text(null_pts))],
             "rows 1, 3 with point 5's latitude `NaN`, 4 with point 1's longitude `null`",
             "rejected `invalid_coordinate` at rows 2 and 3; in 3 = kept 1 + rejected 2")

    big_pts = points(r3)
    big_pts[9] = [big_pts[9][0], round(big_pts[9][1] * 100, 4)]  # decimal point lost: 4114.xxxx
    csv_file("porto_out_of_range.csv", [r1, with_polyline(r3, polyline_text(big_pts)), r4],
             "rows 1, 3 with point 10's latitude x100 (decimal point lost, > 90 degrees), 4",
             "rejected `invalid_coordinate` at row 2; in 3 = kept 2 + rejected 1")

    swapped = [[p[1], p[0]] for p in points(r3)]
    csv_file("porto_swapped_lonlat.csv", [r1, with_polyline(r3, polyline_text(swapped)), r4],
             "rows 1, 3 with every point written [lat, lon], 4",
             "rejected `swapped_lon_lat` at row 2; in 3 = kept 2 + rejected 1")
    csv_file("porto_far_outside_bbox.csv", [r1, r[ROW_FAR_OUTSIDE], r3],
             f"rows 1, {ROW_FAR_OUTSIDE} (real trip 40-50 km north of the city bbox), 3",
             "rejected `outside_bbox` at row 2; in 3 = kept 2 + rejected 1")
    csv_file("porto_teleport.csv", [r1, r[ROW_TELEPORT], r3],
             f"rows 1, {ROW_TELEPORT} (real GPS jump of 148 m/s between two 15 s points), 3",
             "rejected `impossible_speed` (max_speed_mps 50) at row 2; in 3 = kept 2 + rejected 1")

    v7 = fields(r7)
    v7[0] = fields(r3)[0]
    csv_file("porto_duplicate_trip_id.csv", [r1, r3, r4, r1, join(v7)],
             "rows 1, 3, 4, then row 1 again (exact repeat) and row 7 carrying row 3's TRIP_ID",
             "rejected `duplicate_trip` (exact repeat) at row 4; row 5 kept as `<row 3's id>_2` "
             "(`kept_renamed:duplicate_trip_id` 1); in 5 = kept 4 + rejected 1")

    v4 = fields(r4)
    extra = join(v4[:2]).rstrip(b"\r\n") + b',"",' + join(v4[2:])  # one more empty field
    csv_file("porto_extra_field.csv", [r1, r3, extra, r7],
             "rows 1, 3, 4, 7; row 4 has one more (empty) field after CALL_TYPE: 10 fields",
             "InputFileError: row 3 (line 4), wrong field count, expected 9, found 10")
    v3 = fields(r3)
    csv_file("porto_missing_field.csv", [r1, join(v3[:6] + v3[7:]), r4],
             "rows 1, 3, 4; row 3 lacks its DAY_TYPE field: 8 fields",
             "InputFileError: row 2 (line 3), wrong field count, expected 9, found 8")

    def drop_col(line, i=7):
        v = fields(line)
        return join(v[:i] + v[i + 1:])
    c.write("porto_missing_column.csv", drop_col(header) + b"".join(drop_col(x) for x in (r1, r3, r4)),
            "header and rows 1, 3, 4 without the MISSING_DATA column",
            "InputFileError: missing column(s) ['MISSING_DATA'] (header, line 1)")
    c.write("porto_wrong_delimiter.csv",
            b"".join(join(fields(x), delimiter=";") for x in (header, r1, r3, r4)),
            "header and rows 1, 3, 4 written with ';' between fields",
            "InputFileError: missing columns, header separated by ';' (wrong delimiter)")

    latin = fields(r4)
    latin[1] = "\u00c7"  # CALL_TYPE "C" -> "Ç" written in Latin-1 (byte 0xc7)
    csv_file("porto_non_utf8.csv", [r1, r3, join(latin).replace("\u00c7".encode(), b"\xc7"), r7],
             "rows 1, 3, 4, 7; row 4's CALL_TYPE is the Latin-1 byte 0xc7 ('Ç')",
             "InputFileError: row 3 (line 4), byte 0xc7 is not UTF-8")
    c.write("porto_empty.csv", b"", "nothing (0 bytes)", "InputFileError: empty file")
    c.write("porto_header_only.csv", header, "the header line only", "InputFileError: no data rows")

    ts = fields(r3)
    ts[5] = "2013-07-01 00:00:58"  # the same instant as 1372636858, written as a date
    csv_file("porto_timestamp_not_integer.csv", [r1, join(ts), r4],
             "rows 1, 3 with TIMESTAMP 1372636858 written as `2013-07-01 00:00:58`, 4",
             "rejected `timestamp_not_integer` at row 2; in 3 = kept 2 + rejected 1")
    alt = [[p[0], p[1], 87.0] for p in points(r3)]
    csv_file("porto_point_not_pair.csv", [r1, with_polyline(r3, polyline_text3(alt)), r4],
             "rows 1, 3 with a third value (87.0, as an altitude) in every point, 4",
             "rejected `polyline_point_not_lon_lat_pair` at row 2; in 3 = kept 2 + rejected 1")

    # truncated compressed files: the first 30 data rows, compressed, cut at 60 % of the bytes
    first30 = header + b"".join(rows[:30])
    xz = lzma.compress(first30, preset=6)
    c.write("porto_truncated.csv.xz", xz[: len(xz) * 6 // 10],
            "header + rows 1-30, xz (preset 6), first 60 % of the compressed bytes",
            "InputFileError: truncated or corrupt .xz file, names the first incomplete row")
    gz = gzip.compress(first30, compresslevel=9, mtime=0)
    c.write("porto_truncated.csv.gz", gz[: len(gz) * 6 // 10],
            "header + rows 1-30, gzip (level 9, mtime 0), first 60 % of the compressed bytes",
            "InputFileError: truncated or corrupt .gz file, names the first incomplete row")
    # two bz2 streams (as pbzip2/lbzip2 write): rows 1-10, then rows 11-30 cut at 60 %
    part1 = bz2.compress(header + b"".join(rows[:10]), 9)
    part2 = bz2.compress(b"".join(rows[10:30]), 9)
    c.write("porto_truncated.csv.bz2", part1 + part2[: len(part2) * 6 // 10],
            "two bz2 streams: header + rows 1-10, then rows 11-30 cut at 60 % of its bytes",
            "InputFileError: truncated or corrupt .bz2 file at row 11")


def polyline_text3(pts: list[list]) -> str:
    return "[" + ",".join(f"[{p[0]},{p[1]},{p[2]}]" for p in pts) + "]"


# ----------------------------------------------------------------------------------------------
# Cabspotting


def cab_files(data_root: Path) -> dict[str, bytes]:
    """The raw bytes of the cab files in :data:`CABS` and of :data:`CAB_SLICE`'s cab, from the real tarball."""
    wanted = {f"cabspottingdata/new_{cab}.txt": cab for cab in CABS + (CAB_SLICE[0],)}
    out = {}
    with tarfile.open(data_root / CAB_TAR, "r|*") as tar:
        for m in tar:
            if m.name in wanted:
                out[wanted[m.name]] = tar.extractfile(m).read()
                if len(out) == len(wanted):
                    break
    assert set(out) == set(wanted.values()), out.keys()
    return out


def make_cabspotting(c: Corpus, data_root: Path) -> None:
    raw = cab_files(data_root)
    name, first, last = CAB_SLICE
    lines = raw[name].decode().splitlines(keepends=True)[first - 1:last]
    assert len(lines) == 42 and all(len(line.split()) == 4 for line in lines)
    times = [int(line.split()[3]) for line in lines]
    assert all(a > b for a, b in zip(times, times[1:]))  # newest first, as published
    assert all(a - b <= 300 for a, b in zip(times, times[1:]))  # no gap: only occupancy splits fares
    occ = "".join(line.split()[2] for line in lines)
    # newest first: 2 free, fare of 8, ONE free fix, fare of 11, 14 free, fare of 6
    assert occ == "00" + "1" * 8 + "0" + "1" * 11 + "0" * 14 + "1" * 6, occ
    src = f"lines {first}-{last} of the real new_{name}.txt"

    def cab(folder, text, derived, expected):
        data = text if isinstance(text, bytes) else "".join(text).encode()
        c.write(f"{folder}/cabspottingdata/new_{name}.txt", data, derived, expected)

    cab("cab_control", lines, f"{src} (42 fixes, newest first, free and occupied; one free fix between "
        "the two newest fares)",
        "read without error: 3 occupied runs (6, 11, 8 fixes, oldest first), the reference for the cab kinds")
    dup = list(lines)
    lat, lon, occ, t = lines[19].split()
    dup.insert(20, f"{float(lat) + 0.001:.5f} {lon} {occ} {t}\n")  # same time, another position
    dup.insert(3, lines[2])  # exact repeat of line 3
    cab("cab_duplicate_timestamps", dup,
        f"{src} with line 3 repeated and line 20's timestamp repeated at a position 0.001 deg north",
        "`fixes_dropped:duplicate_timestamp` = 2 in the ingest QC; the first fix of each time kept; "
        "trips identical to cab_control")
    cab("cab_out_of_order", lines[21:] + lines[:21],
        f"{src} with its two halves exchanged (lines 22-42, then 1-21)",
        "`fixes_resorted:out_of_order` = 1 in the ingest QC; trips identical to cab_control")
    bad_occ = list(lines)
    for i, value in ((16, "2"), (38, "-1")):  # line 17: 6th of the 11-fix fare; line 39: 3rd of the 6-fix fare
        lat, lon, o, t = bad_occ[i].split()
        assert o == "1"
        bad_occ[i] = f"{lat} {lon} {value} {t}\n"
    cab("cab_invalid_occupancy", bad_occ,
        f"{src} with occupancy 2 at line 17 and -1 at line 39",
        "`fixes_dropped:invalid_occupancy` = 2; the 11-fix fare splits into 5 + 5 (kept), the 6-fix fare "
        "into 2 + 3 (rejected `too_few_fixes`), the 8-fix fare kept; in 5 = kept 3 + rejected 2")
    text = "".join(lines).encode()
    pos = text.index(b" ", sum(len(x) for x in lines[:4]))  # after line 5's latitude
    cab("cab_non_utf8", text[:pos] + b"\xb0" + text[pos:],
        f"{src} with a Latin-1 degree sign (byte 0xb0) after line 5's latitude",
        "InputFileError: row 5, byte 0xb0 is not UTF-8")
    short = list(lines)
    lat, lon, _, t = short[9].split()
    short[9] = f"{lat} {lon} {t}\n"
    cab("cab_wrong_field_count", short, f"{src} with line 10's occupancy field removed",
        "InputFileError: row 10, wrong field count, expected 4, found 3")

    buf = io.BytesIO()
    members = [(name, "".join(lines).encode()), (CABS[1], raw[CABS[1]])]  # the slice, then a whole small file
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member, data in members:
            info = tarfile.TarInfo(f"cabspottingdata/new_{member}.txt")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    archive = lzma.compress(buf.getvalue(), preset=6)
    c.write("cab_truncated.tar.xz", archive[: len(archive) * 6 // 10],
            f"tar of new_{name}.txt as in cab_control and the whole real new_{CABS[1]}.txt, xz, first 60 % "
            "of the bytes",
            "InputFileError: truncated or corrupt archive")
    c.write("cab_empty.tar.xz", b"", "nothing (0 bytes) in place of the tarball",
            "InputFileError: empty file")


# ----------------------------------------------------------------------------------------------
# OpenStreetMap


def osm_elements(data_root: Path) -> tuple[dict[int, str], dict[int, tuple[str, list[int]]]]:
    """XML text of the nodes and ways used, from the real Porto extract."""
    way_ids = set(DRIVABLE_WAYS) | set(FOOT_WAYS)
    ways, node_xml = {}, {}
    with bz2.open(data_root / PORTO_OSM) as f:
        for _, e in iterparse(f, events=("end",)):
            if e.tag == "node":
                node_xml[int(e.get("id"))] = tostring(e, encoding="unicode").strip()
                e.clear()
            elif e.tag == "way":
                if int(e.get("id")) in way_ids:
                    ways[int(e.get("id"))] = (tostring(e, encoding="unicode").strip(),
                                              [int(n.get("ref")) for n in e.iter("nd")])
                e.clear()
    assert set(ways) == way_ids
    needed = {r for _, refs in ways.values() for r in refs}
    return {n: node_xml[n] for n in sorted(needed)}, ways


def osm_doc(nodes: dict[int, str], ways: dict[int, tuple[str, list[int]]], way_ids) -> bytes:
    used = sorted({r for w in way_ids for r in ways[w][1]})
    body = [f"  {nodes[n]}" for n in used if n in nodes] + [f"  {ways[w][0]}" for w in way_ids]
    text = ("<?xml version='1.0' encoding='UTF-8'?>\n<osm version=\"0.6\" generator=\"trajzoo make_corpus "
            f"from {PORTO_OSM}\">\n" + "\n".join(body) + "\n</osm>\n")
    return text.encode("utf-8")


def make_osm(c: Corpus, data_root: Path) -> None:
    nodes, ways = osm_elements(data_root)
    assert REMOVED_NODE in ways[DRIVABLE_WAYS[1]][1]
    assert sum(REMOVED_NODE in refs for _, refs in ways.values()) == 1
    control = osm_doc(nodes, ways, DRIVABLE_WAYS)
    c.write("osm_control.osm", control,
            f"ways {', '.join(map(str, DRIVABLE_WAYS))} (two-way residential) and their nodes",
            "builds: a small strongly connected drivable network, the reference for the OSM kinds")
    lacking = {n: x for n, x in nodes.items() if n != REMOVED_NODE}
    c.write("osm_missing_nodes.osm", osm_doc(lacking, ways, DRIVABLE_WAYS),
            f"osm_control.osm without node {REMOVED_NODE} (referenced by way {DRIVABLE_WAYS[1]})",
            f"RoadNetworkError: way {DRIVABLE_WAYS[1]} references missing node {REMOVED_NODE}")
    c.write("osm_no_drivable.osm", osm_doc(nodes, ways, FOOT_WAYS),
            f"ways {', '.join(map(str, FOOT_WAYS))} (pedestrian, footway) and their nodes",
            "RoadNetworkError: no drivable road")
    packed = bz2.compress(control, 9)
    c.write("osm_truncated.osm.bz2", packed[: len(packed) * 6 // 10],
            "osm_control.osm, bz2, first 60 % of the compressed bytes",
            "RoadNetworkError: truncated or corrupt compressed OSM file")


# ----------------------------------------------------------------------------------------------
# config.yaml


def make_config(c: Corpus) -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert config["cities"]["porto"]["filters"]["max_speed_mps"] == 50
    assert config["cities"]["porto"]["caps"]["max_trips"] is None

    def fragment(name, data, derived, expected):
        text = f"# override merged over config.yaml by test_bad_input.py: {derived}\n" + yaml.safe_dump(data)
        c.write(name, text.encode(), derived, expected)

    fragment("config_unknown_key.yaml", {"cities": {"porto": {"filters": {"max_sped_mps": 40}}}},
             "config.yaml + cities.porto.filters.max_sped_mps (a misspelt max_speed_mps)",
             "snakemake -n exits 1: config validation, 'max_sped_mps' was unexpected")
    fragment("config_wrong_type.yaml", {"cities": {"porto": {"caps": {"max_trips": "1000"}}}},
             "config.yaml + cities.porto.caps.max_trips as the string '1000'",
             "snakemake -n exits 1: config validation, '1000' is not of type 'integer', 'null'")
    fragment("config_missing_data_root.yaml", {"data_root": "no-such-folder/data"},
             "config.yaml with data_root no-such-folder/data",
             "snakemake -n exits 1: data_root no-such-folder/data does not exist")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    ap.add_argument("--out", type=Path, default=HERE / "corpus")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    c = Corpus(args.out)
    make_porto(c, args.data_root)
    make_cabspotting(c, args.data_root)
    make_osm(c, args.data_root)
    make_config(c)
    c.write_manifest()
    total = sum((args.out / name).stat().st_size for name, _, _ in c.manifest)
    print(f"{len(c.manifest)} corpus files, {total} bytes, in {args.out}")


if __name__ == "__main__":
    main()
