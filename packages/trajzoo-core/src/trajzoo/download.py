"""Getting the public data: where each source comes from, and the optional download steps.

Downloads are off by default (``downloads.enabled: false`` in ``config.yaml``); the pipeline then
only reads files that are already under ``data_root``. When enabled, two sources can be fetched:

- an OpenStreetMap road extract of the city's bbox through Overpass with osmnx
  (:func:`fetch_osm_overpass`), written as OSM XML where the city's ``osm.file`` points;
- a file from a public URL (:func:`fetch_url`), e.g. the Porto ECML/PKDD 2015 archive from the UCI
  Machine Learning Repository, optionally taking one member out of a zip archive.

Every downloaded file gets a provenance record beside it (``<file>.provenance.json``: source,
bbox / URL, query, UTC time, library versions, SHA-256 and size). A later run whose request is the
same and whose file still has the recorded digest reuses the file instead of downloading again.
The network call itself is a replaceable function (``fetch=``), so the bookkeeping is tested
without any network (the tests block it).

Data behind a licence form (Cabspotting, CRAWDAD) is never downloaded: :data:`HOW_TO_GET` says
how to get each kind of file by hand, and the workflow quotes it when a configured file is missing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

PROVENANCE_SUFFIX = ".provenance.json"

#: Where the Porto ECML/PKDD 2015 data is published (UCI Machine Learning Repository, id 339,
#: CC BY 4.0): a zip archive whose members include ``train.csv.zip`` as distributed on Kaggle.
PORTO_ARCHIVE_URL = ("https://archive.ics.uci.edu/static/public/339/"
                     "taxi+service+trajectory+prediction+challenge+ecml+pkdd+2015.zip")

#: How to get each kind of input by hand (trajectory formats and ``osm``), quoted by the workflow
#: when a configured file is missing.
HOW_TO_GET = {
    "porto_csv": ("the Porto taxi train.csv of the ECML/PKDD 2015 challenge (CC BY 4.0): download the archive "
                  f"{PORTO_ARCHIVE_URL} (UCI Machine Learning Repository, dataset 339) or the Kaggle "
                  "competition 'pkdd-15-predict-taxi-service-trajectory-i', and point trajectories.path at "
                  "train.csv.zip as distributed (or train.csv, .gz, .bz2, .xz); or set downloads.enabled: true "
                  "with trajectories.download.url to let the workflow fetch it"),
    "cabspotting": ("the Cabspotting San Francisco taxi traces (CRAWDAD epfl/mobility, doi:10.15783/C7J010): "
                    "they are behind CRAWDAD's licence form, so download them by hand after accepting it "
                    "(IEEE DataPort, 'CRAWDAD epfl/mobility'), and point trajectories.path at the "
                    "cabspottingdata/ folder or its tarball (.tar, .tar.gz, .tar.xz); never downloaded by the workflow"),
    "deeptte_jsonl": ("the Chengdu trajectories published with DeepTTE (Wang et al., AAAI 2018; DataCastle "
                      "Chengdu taxi data, research use): the JSON-lines files of the DeepTTE repository's data "
                      "folder, plain, .gz or .xz"),
    "fixes": ("your own CSV or Parquet of GPS fixes (one row per fix); the trajectories.columns mapping names "
              "its columns"),
    "osm": ("an OpenStreetMap extract of the city (c) OpenStreetMap contributors, ODbL: an .osm.pbf from a "
            "regional extract service (e.g. Geofabrik, BBBike) or an .osm/.osm.bz2 XML export, or set "
            "osm.overpass: true with downloads.enabled: true to fetch the city's bbox through Overpass "
            "with osmnx into osm.file"),
    "pois": "a CSV of POIs (lon,lat,cat or osm_id,lon,lat,key,value,name), e.g. exported from OpenStreetMap",
}


def how_to_get(kind: str) -> str:
    """The :data:`HOW_TO_GET` text of a trajectory format or ``osm``/``pois`` (a generic hint for
    a reader plugin this module does not know)."""
    return HOW_TO_GET.get(kind, f"the input of trajectory reader {kind!r} (see that reader's documentation)")


def provenance_path(path: Path) -> Path:
    """The provenance record of a downloaded file: ``<path>.provenance.json``."""
    path = Path(path)
    return path.with_name(path.name + PROVENANCE_SUFFIX)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_provenance(path: Path) -> dict | None:
    """The provenance record of ``path`` (see :func:`provenance_path`), or None if there is none
    or it is not readable JSON."""
    try:
        return json.loads(provenance_path(path).read_text())
    except (OSError, ValueError):
        return None


def reusable(path: Path, request: dict) -> dict | None:
    """The provenance record of ``path`` if the file can be reused for ``request``: the file
    exists, its record's ``request`` equals ``request`` and the file still has the recorded
    SHA-256 and size. Otherwise None (download again)."""
    path = Path(path)
    record = read_provenance(path)
    if not path.is_file() or record is None or record.get("request") != request:
        return None
    if record.get("bytes") != path.stat().st_size or record.get("sha256") != sha256_file(path):
        return None
    return record


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_record(path: Path, request: dict, extra: dict, now: str | None) -> dict:
    record = {"file": Path(path).name, "request": request, "downloaded_at_utc": now or _utc_now(),
              "sha256": sha256_file(path), "bytes": Path(path).stat().st_size, **extra}
    tmp = provenance_path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, provenance_path(path))
    return record


def overpass_request(bbox: list[float]) -> dict:
    """What an Overpass download of ``bbox`` asks osmnx for (recorded as the provenance's
    ``request``; a changed bbox or filter means a new download).

    Args:
        bbox: ``[min_lon, min_lat, max_lon, max_lat]`` in degrees.

    Returns:
        ``{"source": "overpass", "bbox": [...], "function": "osmnx.graph_from_bbox",
        "custom_filter": <Overpass QL of the drive rules>, "simplify": False, "retain_all": True}``.
    """
    from trajzoo.roads.network import drive_custom_filter

    if bbox is None or len(bbox) != 4:
        raise ValueError(f"an Overpass download needs the city's bbox [min_lon, min_lat, max_lon, max_lat], got {bbox}")
    return {"source": "overpass", "bbox": [float(v) for v in bbox], "function": "osmnx.graph_from_bbox",
            "custom_filter": drive_custom_filter(), "simplify": False, "retain_all": True}


def _osmnx_overpass(request: dict):
    """The real download: osmnx ``graph_from_bbox`` with the drive rules (needs the network).

    ``settings.all_oneway`` is on during the call, as osmnx requires of a graph that
    ``save_graph_xml`` writes back as OSM ways."""
    import osmnx as ox

    before = ox.settings.all_oneway
    ox.settings.all_oneway = True
    try:
        return ox.graph_from_bbox(tuple(request["bbox"]), custom_filter=request["custom_filter"],
                                  simplify=request["simplify"], retain_all=request["retain_all"])
    finally:
        ox.settings.all_oneway = before


def fetch_osm_overpass(bbox: list[float], out: Path, fetch: Callable | None = None, now: str | None = None) -> dict:
    """Download the drivable OSM ways of ``bbox`` through Overpass with osmnx and save them as OSM
    XML at ``out`` (``osmnx.save_graph_xml``), with a provenance record beside it; reuse ``out``
    when a previous download of the same request is there unchanged (:func:`reusable`).

    Args:
        bbox: ``[min_lon, min_lat, max_lon, max_lat]`` degrees.
        out: the OSM XML file to write (the city's ``osm.file`` under ``data_root``).
        fetch: ``fetch(request) -> networkx.MultiDiGraph`` (unsimplified osmnx graph); default the
            osmnx Overpass call. Tests pass a fake.
        now: the UTC time to record (default: now).

    Returns:
        The provenance record: ``request`` (:func:`overpass_request`), ``downloaded_at_utc``,
        ``osmnx_version``, ``overpass_url``, ``sha256``, ``bytes``, and ``reused`` (True if no
        download happened).
    """
    import osmnx as ox

    out = Path(out)
    request = overpass_request(bbox)
    record = reusable(out, request)
    if record is not None:
        log.info("%s: reusing the Overpass download of %s (%s)", out, record["downloaded_at_utc"], request["bbox"])
        return {**record, "reused": True}
    graph = (fetch or _osmnx_overpass)(request)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".download-") as tmp, warnings.catch_warnings():
        # osmnx warns unless settings.all_oneway was on when the graph was made (it is, in
        # _osmnx_overpass); the road stage reads the file with graph_from_xml like any extract
        warnings.filterwarnings("ignore", message="Make sure graph was created", category=UserWarning)
        part = Path(tmp) / out.name
        ox.save_graph_xml(graph, part)
        os.replace(part, out)
    record = _write_record(out, request, {"osmnx_version": ox.__version__,
                                          "overpass_url": ox.settings.overpass_url}, now)
    log.info("%s: downloaded %d nodes, %d edges from Overpass", out, graph.number_of_nodes(), graph.number_of_edges())
    return {**record, "reused": False}


def url_request(url: str, member: str | None = None) -> dict:
    """The provenance ``request`` of a URL download (``member``: the zip member to keep)."""
    return {"source": "url", "url": url, "member": member}


def _urllib_fetch(url: str, dest: Path) -> None:
    """The real download: stream ``url`` into ``dest`` with urllib (needs the network)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as f:  # noqa: S310 - configured public URL
        shutil.copyfileobj(response, f, 1 << 20)


def fetch_url(url: str, out: Path, member: str | None = None, fetch: Callable | None = None,
              now: str | None = None) -> dict:
    """Download ``url`` to ``out`` (or, with ``member``, take that member out of the downloaded
    zip archive), with a provenance record beside it; reuse ``out`` when a previous download of
    the same URL and member is there unchanged.

    Args:
        url: the public file, e.g. :data:`PORTO_ARCHIVE_URL`.
        out: the file to write (the city's ``trajectories.path`` under ``data_root``).
        member: the name (or trailing path) of one member of the downloaded zip to keep, e.g.
            ``train.csv.zip``; None keeps the download itself.
        fetch: ``fetch(url, dest_path)`` writing the bytes; default urllib. Tests pass a fake.
        now: the UTC time to record.

    Returns:
        The provenance record (``request`` = :func:`url_request`, ``downloaded_at_utc``,
        ``sha256``, ``bytes``, ``reused``).

    Raises:
        ValueError: ``member`` is given but the download is not a zip, or has no such member
            (lists the members).
    """
    out = Path(out)
    request = url_request(url, member)
    record = reusable(out, request)
    if record is not None:
        log.info("%s: reusing the download of %s (%s)", out, url, record["downloaded_at_utc"])
        return {**record, "reused": True}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".download-") as tmp:
        raw = Path(tmp) / "download"
        (fetch or _urllib_fetch)(url, raw)
        if member is None:
            os.replace(raw, out)
        else:
            if not zipfile.is_zipfile(raw):
                raise ValueError(f"{url}: not a zip archive, cannot take member {member!r} out of it")
            with zipfile.ZipFile(raw) as zf:
                names = [n for n in zf.namelist() if n == member or n.endswith("/" + member)]
                if len(names) != 1:
                    raise ValueError(f"{url}: the archive has no single member {member!r}; members: {zf.namelist()}")
                with zf.open(names[0]) as src, open(Path(tmp) / "member", "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(Path(tmp) / "member", out)
    record = _write_record(out, request, {}, now)
    log.info("%s: downloaded from %s (%d bytes)", out, url, record["bytes"])
    return {**record, "reused": False}


def plan_inputs(config: dict, data_root: Path) -> tuple[list[str], dict[str, list[float]], dict[str, dict]]:
    """Check that every file a configured city reads exists under ``data_root``, and plan the
    downloads that ``downloads.enabled`` allows for the missing ones.

    A city's files: ``trajectories.path``, ``osm.file`` (unless ``osm`` is null) and every
    ``pois`` entry. With ``downloads.enabled: true``, a missing ``osm.file`` of a city with
    ``osm.overpass: true`` is an Overpass download of its ``bbox``, and a missing
    ``trajectories.path`` with ``trajectories.download.url`` is a URL download; a file that exists
    is never downloaded again.

    Args:
        config: the validated workflow config (``cities``, ``downloads``).
        data_root: the folder every path is relative to.

    Returns:
        ``(problems, osm_downloads, trajectory_downloads)``: one message per missing file that
        nothing will download (naming the config key, the file and how to get it,
        :data:`HOW_TO_GET`); ``{osm.file: bbox}``; ``{trajectories.path: download section}``.
    """
    enabled = bool((config.get("downloads") or {}).get("enabled", False))
    problems, osm_dl, traj_dl = [], {}, {}
    data_root = Path(data_root)

    def missing(key: str, rel: str, kind: str, can_download: str) -> None:
        path = data_root / rel
        if path.exists():
            return
        hint = how_to_get(kind)
        if not enabled and can_download:
            hint += f"; or {can_download}: set downloads.enabled: true"
        problems.append(f"{key}: {path} does not exist. Get {hint}.")

    for city, c in sorted(config["cities"].items()):
        traj = c["trajectories"]
        rel = traj["path"]
        if traj.get("download") and enabled and not (data_root / rel).exists():
            traj_dl[rel] = {"url": traj["download"]["url"], "member": traj["download"].get("member")}
        else:
            missing(f"cities.{city}.trajectories.path", rel, traj["format"],
                    f"let the workflow fetch trajectories.download.url ({traj['download']['url']})"
                    if traj.get("download") else "")
        osm = c.get("osm")
        if osm:
            if not osm.get("file"):
                where = ", and where the Overpass download is saved" if osm.get("overpass") else ""
                problems.append(f"cities.{city}.osm: needs file (the extract to read{where})")
            elif osm.get("overpass") and enabled and not (data_root / osm["file"]).exists():
                if c.get("bbox") is None:
                    problems.append(f"cities.{city}.osm.overpass: an Overpass download needs the city's bbox")
                else:
                    osm_dl[osm["file"]] = [float(v) for v in c["bbox"]]
            else:
                missing(f"cities.{city}.osm.file", osm["file"], "osm",
                        "set osm.overpass: true (the city's bbox through Overpass)" if not osm.get("overpass") else "")
        for i, poi in enumerate(c.get("pois") or []):
            missing(f"cities.{city}.pois[{i}]", poi, "pois", "")
    return problems, osm_dl, traj_dl
