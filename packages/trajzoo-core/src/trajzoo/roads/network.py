"""Road network: OpenStreetMap -> drivable, strongly connected, projected road segments.

The network is read with osmnx (``graph_from_xml`` for a local .osm/.osm.bz2 extract, an
.osm.pbf converted with pyosmium, or the file an Overpass download saved, see
:mod:`trajzoo.download`), restricted to drivable ways with osmnx's "drive" rules
(:data:`DRIVE_RULES`), simplified, cut to its largest strongly connected component and
projected to the city's UTM CRS with pyproj (via osmnx). Road segments are the directed edges.
"""
from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: OSM way tags kept when parsing; the drive filter needs ``motor_vehicle`` and ``motorcar``.
EXTRA_WAY_TAGS = ("motor_vehicle", "motorcar", "access", "service", "area")

SEGMENT_COLUMNS = [
    "segment_id", "u", "v", "key", "osmid", "highway", "lanes", "maxspeed", "length", "oneway",
    "bridge", "tunnel", "lon_start", "lat_start", "lon_end", "lat_end", "geometry_wkt",
]


class RoadNetworkError(ValueError):
    """Raised when an OSM source cannot give a usable drivable network."""


@dataclass(frozen=True)
class TagRule:
    """One clause of an Overpass tag filter: ``["key"]`` (tag required, ``values`` None) or
    ``["key"!~"v1|v2"]`` (``negate``: a way whose value is one of ``values`` fails)."""

    key: str
    negate: bool
    values: tuple[str, ...] | None

    def overpass(self) -> str:
        """The clause in Overpass QL, the format of osmnx's public ``custom_filter`` argument."""
        if self.values is None:
            return f'["{self.key}"]'
        return f'["{self.key}"{"!~" if self.negate else "~"}"{"|".join(self.values)}"]'


#: osmnx's "drive" network type, written out: the OSM tags that make a way drivable, as the
#: osmnx documentation defines network_type="drive" (osmnx 2.x). The same rules filter a local
#: extract (:func:`is_drivable`) and an Overpass download (``custom_filter``, osmnx's public
#: argument, :func:`drive_custom_filter`), so "drivable" means the same for both.
#: ``tests/core/test_roads.py`` checks that the installed osmnx still means the same by "drive".
DRIVE_RULES: tuple[TagRule, ...] = (
    TagRule("highway", False, None),
    TagRule("area", True, ("yes",)),
    TagRule("access", True, ("private",)),
    TagRule("highway", True, ("abandoned", "bridleway", "bus_guideway", "construction", "corridor", "cycleway",
                              "elevator", "escalator", "footway", "no", "path", "pedestrian", "planned",
                              "platform", "proposed", "raceway", "razed", "rest_area", "service", "services",
                              "steps", "track")),
    TagRule("motor_vehicle", True, ("no",)),
    TagRule("motorcar", True, ("no",)),
    TagRule("service", True, ("alley", "driveway", "emergency_access", "parking", "parking_aisle", "private")),
)


def drive_custom_filter() -> str:
    """:data:`DRIVE_RULES` as one Overpass QL filter string, for
    ``osmnx.graph_from_bbox(..., custom_filter=...)`` (public osmnx API)."""
    return "".join(rule.overpass() for rule in DRIVE_RULES)


def drive_filter_rules(network_type: str = "drive") -> list[TagRule]:
    """The tag rules of ``network_type`` (only "drive"): :data:`DRIVE_RULES`.

    Raises:
        RoadNetworkError: another network type.
    """
    if network_type != "drive":
        raise RoadNetworkError(f"network type {network_type!r}: only 'drive' is defined")
    return list(DRIVE_RULES)


def _tag_values(value) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def is_drivable(tags: dict, rules: list[TagRule]) -> bool:
    """True if an OSM way's tags pass every rule (osmnx "drive" semantics).

    A ``["key"]`` rule requires the tag; ``["key"!~"re"]`` rejects a way whose value matches;
    a missing tag passes a negated rule.
    """
    for rule in rules:
        values = _tag_values(tags.get(rule.key))
        if rule.values is None:
            if not values:
                return False
            continue
        # osmnx's Overpass clauses are unanchored regular expressions (``"service"!~"private"``
        # also drops ``service=private_road``); a substring test reproduces that exactly
        hit = any(any(x in v for x in rule.values) for v in values)
        if rule.negate and hit:
            return False
        if not rule.negate and not hit:
            return False
    return True


def _open_osm_text(path: Path):
    """Open an OSM XML file (.osm, .osm.bz2, .osm.gz) for binary reading, as osmnx does."""
    import bz2
    import gzip

    if path.suffix == ".bz2":
        return bz2.open(path, "rb")
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def ways_with_missing_nodes(path: Path) -> tuple[dict[int, list[int]], int]:
    """Scan an OSM XML file for ways whose ``<nd ref=...>`` point at nodes the file lacks.

    Args:
        path: OSM XML (.osm, .osm.bz2 or .osm.gz).

    Returns:
        ``({way_id: [missing node ids, in way order]}, n_ways)`` for every way with at least one
        missing node, in file order, and the number of ways in the file.

    Raises:
        xml.etree.ElementTree.ParseError, EOFError, OSError: the file is not readable XML.
    """
    from xml.etree.ElementTree import iterparse

    nodes: set[int] = set()
    way_refs: list[tuple[int, list[int]]] = []
    with _open_osm_text(Path(path)) as f:
        for _, elem in iterparse(f, events=("end",)):
            if elem.tag == "node":
                nodes.add(int(elem.get("id")))
                elem.clear()
            elif elem.tag == "way":
                way_refs.append((int(elem.get("id")), [int(nd.get("ref")) for nd in elem.iter("nd")]))
                elem.clear()
    missing = {}
    for way_id, refs in way_refs:
        lost = [r for r in refs if r not in nodes]
        if lost:
            missing[way_id] = lost
    return missing, len(way_refs)


def is_pbf(path: Path) -> bool:
    """True for an OSM PBF extract (``.osm.pbf`` or ``.pbf``, as Geofabrik and BBBike distribute)."""
    return Path(path).name.lower().endswith(".pbf")


def pbf_to_xml(src: Path, dst: Path) -> Path:
    """Convert an OSM PBF extract to OSM XML (what osmnx's ``graph_from_xml`` reads) with
    pyosmium (the ``osmium`` package): every node, way and relation, in file order, and the
    header's bounding box as ``<bounds>``.

    Args:
        src: the ``.osm.pbf`` file. dst: the ``.osm`` file to write (overwritten).

    Returns:
        ``dst``.

    Raises:
        RoadNetworkError: the PBF cannot be read (names the file and osmium's message).
    """
    import osmium

    src, dst = Path(src), Path(dst)
    try:
        processor = osmium.FileProcessor(str(src))
        header = processor.header
        with osmium.SimpleWriter(str(dst), header=header, overwrite=True) as writer:
            for obj in processor:
                writer.add(obj)
    except RuntimeError as exc:  # osmium reports unreadable, truncated or non-PBF data so
        raise RoadNetworkError(f"{src}: cannot read as an OSM PBF extract: {exc}") from exc
    return dst


def check_osm_nodes(path: Path, name: str | Path) -> tuple[float, float, float, float] | None:
    """Check every ``<node>`` of an OSM XML file: a latitude in [-90, 90] and longitude in
    [-180, 180], and one position per node id (a node listed twice must not move).

    osmnx keeps the last of two nodes with the same id and projects impossible coordinates to
    infinite positions, silently; this scan makes them errors.

    Args:
        path: OSM XML (plain; decompress first).
        name: the file as named in messages (the original, compressed one).

    Returns:
        The nodes' extent ``(min_lon, min_lat, max_lon, max_lat)`` in degrees, or None (no node).

    Raises:
        RoadNetworkError: ``<name>: node <id> has lat <lat> / lon <lon> outside ...`` (also for a
            missing or non-numeric coordinate), or ``<name>: node <id> is listed twice with
            different coordinates (...) and (...)``.
        xml.etree.ElementTree.ParseError: not well-formed XML.
    """
    from xml.etree.ElementTree import iterparse

    first: dict[int, tuple[str, str]] = {}
    lo_lon = lo_lat = float("inf")
    hi_lon = hi_lat = float("-inf")
    with open(path, "rb") as f:
        for _, elem in iterparse(f, events=("end",)):
            if elem.tag != "node":
                if elem.tag == "way":
                    elem.clear()
                continue
            nid, lat_s, lon_s = elem.get("id"), elem.get("lat"), elem.get("lon")
            try:
                lat, lon = float(lat_s), float(lon_s)
            except (TypeError, ValueError):
                raise RoadNetworkError(f"{name}: node {nid} has no numeric lat/lon (lat={lat_s!r}, lon={lon_s!r})") from None
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise RoadNetworkError(f"{name}: node {nid} has lat {lat_s}, lon {lon_s}: outside lat [-90, 90] / "
                                       "lon [-180, 180]")
            key = int(nid)
            seen = first.get(key)
            if seen is None:
                first[key] = (lat, lon)
            elif seen != (lat, lon):
                raise RoadNetworkError(f"{name}: node {nid} is listed twice with different coordinates "
                                       f"(lat {seen[0]}, lon {seen[1]}) and (lat {lat_s}, lon {lon_s})")
            lo_lon, lo_lat, hi_lon, hi_lat = min(lo_lon, lon), min(lo_lat, lat), max(hi_lon, lon), max(hi_lat, lat)
            elem.clear()
    return (lo_lon, lo_lat, hi_lon, hi_lat) if first else None


def _plain_osm_copy(path: Path, tmp_dir: Path) -> Path:
    """The OSM XML of ``path`` as a plain file: the file itself, or its strictly decompressed copy
    in ``tmp_dir`` (every stream of a multi-stream .bz2/.gz/.xz; a damaged stream is an error,
    where osmnx's reader would stop there without one).

    Raises:
        RoadNetworkError: the content is not OSM XML (says what it is: OSM PBF, JSON, a zip, CSV,
            ...), the compression suffix does not match the content, or the compressed data is
            truncated or corrupt.
    """
    from trajzoo.ingest.filetype import DECOMPRESS_ERRORS, FileTypeError, describe, open_compressed, sniff

    what = "OSM XML (.osm, .osm.bz2, .osm.gz, .osm.xz)"
    kind = sniff(path)
    inner = sniff(path, decompress=True) if kind in ("gzip", "bz2", "xz") else kind
    if inner not in ("osm_xml", "binary"):
        held = f"{describe(kind)} holding {describe(inner)}" if inner != kind else describe(kind)
        hint = " (convert it with `osmium cat in.osm.pbf -o out.osm`)" if inner == "osm_pbf" else ""
        raise RoadNetworkError(f"{path}: is {held}, expected {what}{hint}")
    try:
        stream = open_compressed(path)
    except FileTypeError as exc:
        raise RoadNetworkError(str(exc)) from exc
    if kind not in ("gzip", "bz2", "xz"):
        stream.close()
        return path
    out = Path(tmp_dir) / "extract.osm"
    try:
        with stream, open(out, "wb") as f:
            while True:
                block = stream.read(1 << 20)
                if not block:
                    break
                f.write(block)
    except DECOMPRESS_ERRORS as exc:
        raise RoadNetworkError(f"{path}: truncated or corrupt compressed OSM file: {exc}") from exc
    return out


def _graph_from_plain_xml(plain: Path, path: Path) -> nx.MultiDiGraph:
    """osmnx's raw graph of a plain OSM XML file ``plain`` (``path``: the file named in messages),
    after :func:`check_osm_nodes`; every failure becomes a :class:`RoadNetworkError` naming ``path``."""
    from xml.etree.ElementTree import ParseError
    from xml.sax import SAXParseException

    import osmnx as ox

    try:
        check_osm_nodes(plain, path)
        graph = ox.graph_from_xml(plain, simplify=False, retain_all=True)
    except RoadNetworkError:
        raise
    except ParseError as exc:  # osmnx first parses the file with ElementTree
        raise RoadNetworkError(f"{path}, line {exc.position[0]}: truncated or corrupt OSM XML "
                               f"(not well-formed: {exc})") from exc
    except SAXParseException as exc:
        raise RoadNetworkError(f"{path}, line {exc.getLineNumber()}: truncated or corrupt OSM XML "
                               f"(not well-formed: {exc.getMessage()})") from exc
    except (EOFError, OSError) as exc:
        raise RoadNetworkError(f"{path}: truncated or corrupt compressed OSM file: {exc}") from exc
    except ValueError as exc:
        try:
            missing, n_ways = ways_with_missing_nodes(plain)
        except Exception:  # noqa: BLE001 - the diagnosis must not hide osmnx's own error
            missing, n_ways = {}, 0
        if missing:
            way_id, lost = next(iter(missing.items()))
            raise RoadNetworkError(
                f"{path}: way {way_id} references node(s) {lost} missing from the file "
                f"({len(missing)} of {n_ways} ways reference missing nodes; the extract was clipped "
                "without complete ways, re-extract it with complete ways)") from exc
        raise RoadNetworkError(f"{path}: cannot build a road graph from this OSM file: {exc}") from exc
    except Exception as exc:  # osmnx raises several types for empty or broken files
        raise RoadNetworkError(f"{path}: cannot build a road graph from this OSM file: {exc}") from exc
    return graph


def load_osm_graph(source: dict, data_root: Path, bbox: list[float] | None = None) -> nx.MultiDiGraph:
    """Read the raw (unsimplified) OSM graph of a city.

    Ways that reference nodes missing from the file (an extract clipped without complete ways)
    are an ERROR, not a silent drop: osmnx 2.1.1 ``graph_from_xml`` adds such a way's edges with
    coordinate-less end nodes and then fails in ``add_edge_lengths`` with a bare
    ``ValueError("Some edges missing nodes, possibly due to input data clipping issue.")`` that
    names no way. On that failure the file is scanned (:func:`ways_with_missing_nodes`) and a
    :class:`RoadNetworkError` names the file, the first such way id, its missing node ids and the
    number of affected ways. Dropping those ways would change the road network without the user
    knowing; re-extracting with complete ways (e.g. ``osmium extract --strategy complete_ways``)
    is the fix.

    Args:
        source: the city's ``osm`` config: ``{"file": path}`` (relative to ``data_root``; OSM XML,
            .osm.bz2/.osm.gz, or an ``.osm.pbf`` extract, converted by :func:`pbf_to_xml`); with
            ``overpass: true`` the file is where :func:`trajzoo.download.fetch_osm_overpass`
            saved the download.
        data_root: root folder of the raw data.
        bbox: ``[min_lon, min_lat, max_lon, max_lat]`` in degrees (unused; kept for callers).

    Returns:
        osmnx MultiDiGraph in EPSG:4326 (node ``x``/``y`` degrees, edge ``length`` metres).

    Raises:
        FileNotFoundError: if the extract does not exist.
        RoadNetworkError: if the file is empty, truncated or corrupt (not well-formed XML or bad
            .bz2/.gz/.xz data in any stream, unreadable .pbf), is not OSM XML or PBF (JSON, a zip, ...: says what
            it is), has a node outside lat/lon ranges or listed twice at different positions
            (:func:`check_osm_nodes`), holds no nodes and ways, has a way referencing a missing
            node, or if neither ``file`` nor ``overpass`` is set. The message starts with the file
            path.
    """
    import osmnx as ox

    ox.settings.useful_tags_way = sorted(set(ox.settings.useful_tags_way) | set(EXTRA_WAY_TAGS))
    if source.get("file"):
        path = Path(data_root) / source["file"]
        if not path.exists():
            raise FileNotFoundError(f"OSM extract not found: {path}")
        if path.is_file() and path.stat().st_size == 0:
            raise RoadNetworkError(f"{path}: empty file (expected OSM XML)")
        if is_pbf(path):
            with tempfile.TemporaryDirectory(prefix="trajzoo-pbf-") as tmp:
                xml = pbf_to_xml(path, Path(tmp) / (path.name[: -len(".pbf")].removesuffix(".osm") + ".osm"))
                graph = load_osm_graph({"file": str(xml)}, Path("/"), bbox)
            return graph
        with tempfile.TemporaryDirectory(prefix="trajzoo-osm-") as tmp:
            plain = _plain_osm_copy(path, Path(tmp))
            graph = _graph_from_plain_xml(plain, path)
    elif source.get("overpass"):
        raise RoadNetworkError("osm.overpass needs osm.file: the Overpass download (rule download_osm, "
                               "downloads.enabled: true) is saved there and read like any extract")
    else:
        raise RoadNetworkError("city osm source needs 'file' or 'overpass: true'")
    return graph


def drivable_strongly_connected(graph: nx.MultiDiGraph, source_name: str = "OSM graph") -> nx.MultiDiGraph:
    """Keep drivable edges, simplify, and keep the largest strongly connected component.

    Args:
        graph: unsimplified osmnx graph in EPSG:4326.
        source_name: name used in error messages (the file path).

    Raises:
        RoadNetworkError: if no drivable way is left.
    """
    import osmnx as ox

    rules = drive_filter_rules("drive")
    drop = [(u, v, k) for u, v, k, d in graph.edges(keys=True, data=True) if not is_drivable(d, rules)]
    graph = graph.copy()
    graph.remove_edges_from(drop)
    graph.remove_nodes_from([n for n in list(graph.nodes) if graph.degree(n) == 0])
    if graph.number_of_edges() == 0:
        raise RoadNetworkError(f"{source_name}: no drivable road (osmnx 'drive' filter) in this extract")
    log.info("drivable: %d nodes, %d edges (dropped %d non-drivable edges)",
             graph.number_of_nodes(), graph.number_of_edges(), len(drop))
    graph = ox.simplify_graph(graph)
    graph = ox.truncate.largest_component(graph, strongly=True)
    log.info("largest strongly connected component: %d nodes, %d edges",
             graph.number_of_nodes(), graph.number_of_edges())
    return graph


def _first(value):
    """One value of a tag. osmnx's simplification merges the tags of joined ways into a list in
    set order, which changes with PYTHONHASHSEED from one process to the next; the smallest value
    (as text) is the same in every process."""
    if isinstance(value, list):
        return min(value, key=str) if value else None
    return value


def parse_number(value, unit_mph: bool = True) -> float:
    """Parse an OSM numeric tag (``lanes``, ``maxspeed``) to a float; NaN if absent or textual.

    Lists (merged ways) and ``"2;3"`` take the maximum; ``"30 mph"`` is converted to km/h.
    """
    values = _tag_values(value)
    out = []
    for v in values:
        for part in re.split(r"[;|]", v):
            m = re.search(r"(\d+(?:\.\d+)?)", part)
            if m:
                x = float(m.group(1))
                if unit_mph and "mph" in part:
                    x *= 1.609344
                out.append(x)
    return max(out) if out else float("nan")


def _flag(value) -> bool:
    return any(v not in ("no", "False", "false", "0", "") for v in _tag_values(value))


#: Placeholder speed given to every edge without a valid ``maxspeed`` (then NaN); osmnx never
#: produces a negative speed from a tag.
_NO_SPEED = -1.0


def edge_maxspeed_kph(graph: nx.MultiDiGraph) -> dict[tuple, float]:
    """The posted speed limit of every edge in km/h, parsed by osmnx's ``add_edge_speeds``.

    osmnx reads ``"50"``, ``"30 mph"`` (converted to km/h), ``"50|30"`` and the implicit values of
    the OSM wiki (``"PT:urban"`` = 50); a simplified edge that merged several ways takes the
    largest of their limits (``agg=np.max``). osmnx imputes missing limits from the highway
    type's mean; here an edge without a valid ``maxspeed`` tag gets NaN instead (no imputed value
    enters the road features).

    Args:
        graph: osmnx MultiDiGraph (any CRS).

    Returns:
        ``{(u, v, key): km/h or NaN}`` for every edge.
    """
    import osmnx as ox

    kinds = set()
    for _, _, hwy in graph.edges(data="highway"):
        kinds.update(_tag_values(hwy) or ["nan"])
    tagged = graph.copy()
    ox.add_edge_speeds(tagged, hwy_speeds=dict.fromkeys(kinds, _NO_SPEED), agg=np.max)
    return {(u, v, k): (float("nan") if s == _NO_SPEED else float(s))
            for u, v, k, s in tagged.edges(keys=True, data="speed_kph")}


def graph_to_segments(graph_latlon: nx.MultiDiGraph, crs: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn the cleaned graph into the road-segment table and the segment adjacency.

    Args:
        graph_latlon: cleaned osmnx graph in EPSG:4326 (output of
            :func:`drivable_strongly_connected`).
        crs: projected CRS for geometry and lengths, e.g. ``"EPSG:32629"``.

    Returns:
        ``segments``: one row per directed edge, sorted by (u, v, key), ``segment_id`` 0..N-1,
        columns :data:`SEGMENT_COLUMNS`; ``length`` in metres (from the projected geometry),
        ``maxspeed`` in km/h (:func:`edge_maxspeed_kph`, NaN without a valid tag), ``geometry_wkt`` in the projected CRS (metres), endpoints in degrees.
        ``adjacency``: columns ``src``, ``dst`` (segment ids) for every pair where the head node
        of ``src`` is the tail node of ``dst``. Zero-length segments (two OSM nodes at one
        position; Porto's extract has 2) are kept and counted in the log.

    Raises:
        RoadNetworkError: ``crs`` unknown to pyproj (naming it); a segment of non-finite length, or
            whose projected length is not within a factor 2 of its great-circle length (osmnx's
            ``length``; a CRS used outside its area of use, a node at the pole), naming the OSM
            way and its nodes.
    """
    import osmnx as ox
    from pyproj import CRS
    from pyproj.exceptions import CRSError
    from shapely import LineString

    try:
        CRS.from_user_input(crs)
    except CRSError as exc:
        raise RoadNetworkError(f"crs {crs!r}: not a coordinate reference system pyproj knows ({exc})") from None
    projected = ox.project_graph(graph_latlon, to_crs=crs)
    maxspeed = edge_maxspeed_kph(graph_latlon)
    nodes = dict(graph_latlon.nodes(data=True))
    pnodes = dict(projected.nodes(data=True))
    rows = []
    for u, v, k, d in projected.edges(keys=True, data=True):
        geom = d.get("geometry")
        if geom is None:
            geom = LineString([(pnodes[u]["x"], pnodes[u]["y"]), (pnodes[v]["x"], pnodes[v]["y"])])
        rows.append({
            "u": int(u), "v": int(v), "key": int(k),
            "osmid": str(_first(d.get("osmid"))),
            "highway": str(_first(d.get("highway"))),
            "lanes": parse_number(d.get("lanes"), unit_mph=False),
            "maxspeed": maxspeed[(u, v, k)],
            "length": float(geom.length),
            "_geodesic_m": float(d.get("length", np.nan)),
            "oneway": bool(_first(d.get("oneway", False))),
            "bridge": _flag(d.get("bridge")),
            "tunnel": _flag(d.get("tunnel")),
            "lon_start": float(nodes[u]["x"]), "lat_start": float(nodes[u]["y"]),
            "lon_end": float(nodes[v]["x"]), "lat_end": float(nodes[v]["y"]),
            "geometry_wkt": geom.wkt,
        })
    segments = pd.DataFrame(rows).sort_values(["u", "v", "key"], kind="stable").reset_index(drop=True)
    bad = ~np.isfinite(segments["length"].to_numpy())
    if bad.any():
        first = segments[bad].iloc[0]
        raise RoadNetworkError(f"{int(bad.sum())} road segment(s) have a non-finite length in {crs}, the first "
                               f"OSM way {first['osmid']} from node {first['u']} to node {first['v']} "
                               f"(lon/lat {first['lon_start']}, {first['lat_start']} -> {first['lon_end']}, "
                               f"{first['lat_end']}): outside the CRS's area of use?")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = segments["length"].to_numpy() / segments["_geodesic_m"].to_numpy()
    distorted = (segments["_geodesic_m"].to_numpy() > 1.0) & ~((ratio > 0.5) & (ratio < 2.0))
    if distorted.any():
        first = segments[distorted].iloc[0]
        raise RoadNetworkError(f"{int(distorted.sum())} road segment(s) are {first['length']:.6g} m long in {crs} but "
                               f"{first['_geodesic_m']:.6g} m on the ground, the first OSM way {first['osmid']} from "
                               f"node {first['u']} to node {first['v']}: the CRS distorts them (outside its area of "
                               "use, or a node at an impossible position?)")
    segments = segments.drop(columns="_geodesic_m")
    zero = segments["length"].to_numpy() <= 0
    if zero.any():  # kept (removing them could cut the strongly connected network), but counted
        log.warning("%d road segment(s) of zero length (two OSM nodes at one position), kept: OSM ways %s",
                    int(zero.sum()), sorted(set(segments.loc[zero, "osmid"]))[:10])
    segments.insert(0, "segment_id", np.arange(len(segments), dtype=np.int64))
    tails = segments[["segment_id", "u"]].rename(columns={"segment_id": "dst", "u": "node"})
    heads = segments[["segment_id", "v"]].rename(columns={"segment_id": "src", "v": "node"})
    adjacency = heads.merge(tails, on="node")[["src", "dst"]].sort_values(["src", "dst"]).reset_index(drop=True)
    return segments[SEGMENT_COLUMNS], adjacency


def build_road_network(source: dict, data_root: Path, crs: str, bbox: list[float] | None = None):
    """Full road stage: read OSM, keep drivable SCC, return ``(segments, adjacency)``.

    See :func:`load_osm_graph`, :func:`drivable_strongly_connected`, :func:`graph_to_segments`.

    Raises:
        FileNotFoundError: the extract does not exist.
        RoadNetworkError: an unusable extract (see :func:`load_osm_graph`), no drivable road
            (:func:`drivable_strongly_connected`), a network outside ``bbox``
            (:func:`check_overlap`), an unknown ``crs`` or non-finite lengths
            (:func:`graph_to_segments`); the message names the file.
    """
    name = str(Path(data_root) / source["file"]) if source.get("file") else "Overpass download"
    graph = load_osm_graph(source, data_root, bbox)
    graph = drivable_strongly_connected(graph, name)
    if bbox is not None:
        check_overlap(graph, bbox, name)
    try:
        return graph_to_segments(graph, crs)
    except RoadNetworkError as exc:
        raise RoadNetworkError(f"{name}: {exc}") from None


def check_overlap(graph: nx.MultiDiGraph, bbox: list[float], name: str) -> None:
    """Refuse a road network that does not overlap the city's bounding box.

    Args:
        graph: road graph in EPSG:4326 (node ``x`` = lon, ``y`` = lat, degrees).
        bbox: ``[min_lon, min_lat, max_lon, max_lat]`` degrees.
        name: the source, for the message.

    Raises:
        RoadNetworkError: ``<name>: the road network's extent [..] does not overlap the city's
            bbox [..]``, both in degrees.
    """
    xs = np.array([d["x"] for _, d in graph.nodes(data=True)], dtype=float)
    ys = np.array([d["y"] for _, d in graph.nodes(data=True)], dtype=float)
    ext = [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]
    if ext[0] > bbox[2] or ext[2] < bbox[0] or ext[1] > bbox[3] or ext[3] < bbox[1]:
        def fmt(b):
            return "[" + ", ".join(f"{v:.5f}" for v in b) + "]"
        raise RoadNetworkError(f"{name}: the road network's extent {fmt(ext)} (min_lon, min_lat, max_lon, max_lat) "
                               f"does not overlap the city's bbox {fmt(bbox)}; wrong OSM file or bbox?")
