"""Getting the data: download rules (off by default), provenance records and reuse, and the DAG
stopping before any job when a configured file is missing. No network: the downloads are fake
functions, and the rule wiring is checked with dry runs (the tests block the network)."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from core.test_data_sources import osm_slice
from trajzoo.download import (fetch_osm_overpass, fetch_url, overpass_request, plan_inputs, provenance_path,
                              read_provenance, sha256_file)

BBOX = [-8.615, 41.145, -8.600, 41.155]


@pytest.fixture(scope="module")
def slice_graph(data_root, tmp_path_factory):
    """A raw osmnx graph of a small slice of the real Porto extract (what Overpass would return)."""
    import osmnx as ox

    xml = osm_slice(data_root, tmp_path_factory.mktemp("osm") / "slice.osm")
    return ox.graph_from_xml(xml, simplify=False, retain_all=True)


def test_overpass_download_writes_osm_xml_with_provenance_and_is_reused(slice_graph, tmp_path):
    import osmnx as ox

    from trajzoo.roads.network import build_road_network

    calls = []

    def fake_overpass(request):
        calls.append(request)
        return slice_graph

    out = tmp_path / "porto" / "osm" / "overpass.osm"
    record = fetch_osm_overpass(BBOX, out, fetch=fake_overpass, now="2026-12-01T12:00:00+00:00")
    assert len(calls) == 1 and calls[0] == overpass_request(BBOX)
    assert calls[0]["custom_filter"].startswith('["highway"]["area"!~"yes"]')
    assert record["reused"] is False
    on_disk = json.loads(provenance_path(out).read_text())
    assert on_disk == read_provenance(out)
    assert on_disk["request"]["bbox"] == BBOX and on_disk["request"]["function"] == "osmnx.graph_from_bbox"
    assert on_disk["downloaded_at_utc"] == "2026-12-01T12:00:00+00:00"
    assert on_disk["osmnx_version"] == ox.__version__ and on_disk["sha256"] == sha256_file(out)
    # the saved file is what the road stage reads
    segments, _ = build_road_network({"file": "porto/osm/overpass.osm", "overpass": True}, tmp_path, "EPSG:32629")
    assert len(segments) > 100
    # a second run reuses it: no call, same record
    again = fetch_osm_overpass(BBOX, out, fetch=fake_overpass)
    assert len(calls) == 1 and again["reused"] is True and again["sha256"] == on_disk["sha256"]
    # another bbox, or a file changed since, downloads again
    fetch_osm_overpass([b + 0.001 for b in BBOX], out, fetch=fake_overpass)
    assert len(calls) == 2
    out.write_text(out.read_text() + "\n")
    fetch_osm_overpass([b + 0.001 for b in BBOX], out, fetch=fake_overpass)
    assert len(calls) == 3


def test_url_download_takes_one_zip_member_and_is_reused(data_root, tmp_path):
    """The Porto archive layout: an outer zip holding train.csv.zip (here a slice of the real file)."""
    import lzma

    with lzma.open(data_root / "porto" / "train.csv.xz", "rt") as f:
        head = "".join(next(f) for _ in range(51))
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("train.csv", head)
    outer = tmp_path / "archive.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "train.csv.zip")
        zf.writestr("test.csv.zip", b"")
    calls = []

    def fake_get(url, dest):
        calls.append(url)
        Path(dest).write_bytes(outer.read_bytes())

    out = tmp_path / "data" / "porto" / "train.csv.zip"
    rec = fetch_url("https://example.invalid/porto.zip", out, member="train.csv.zip", fetch=fake_get)
    assert calls == ["https://example.invalid/porto.zip"] and rec["reused"] is False
    assert out.read_bytes() == inner.read_bytes()
    assert read_provenance(out)["request"] == {"source": "url", "url": "https://example.invalid/porto.zip",
                                               "member": "train.csv.zip"}
    from trajzoo.ingest.porto import read_porto_trips

    assert sum(len(t) + len(r) for t, r in read_porto_trips(out)) == 50
    assert fetch_url("https://example.invalid/porto.zip", out, member="train.csv.zip", fetch=fake_get)["reused"]
    assert len(calls) == 1
    with pytest.raises(ValueError, match=r"no single member 'nope.csv'.*train\.csv\.zip"):
        fetch_url("https://example.invalid/porto.zip", tmp_path / "x", member="nope.csv", fetch=fake_get)


def test_plan_inputs_names_missing_files_and_plans_enabled_downloads(repo, data_root):
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    assert plan_inputs(cfg, data_root) == ([], {}, {})  # the default config: everything there, nothing fetched
    cfg["cities"]["porto"]["trajectories"]["path"] = "porto/train.csv.zip"
    cfg["cities"]["porto"]["trajectories"]["download"] = {"url": "https://example.invalid/p.zip",
                                                          "member": "train.csv.zip"}
    cfg["cities"]["porto"]["osm"] = {"file": "porto/osm/overpass.osm", "overpass": True}
    cfg["cities"]["sanfrancisco"]["trajectories"]["path"] = "sanfrancisco/cabspottingdata"
    problems, osm, traj = plan_inputs(cfg, data_root)
    assert osm == {} and traj == {}  # downloads are off by default
    assert len(problems) == 3
    assert "cities.porto.trajectories.path" in problems[0] and "train.csv.zip does not exist" in problems[0]
    assert "set downloads.enabled: true" in problems[0]
    assert "cities.porto.osm.file" in problems[1] and "OpenStreetMap" in problems[1]
    assert "cities.sanfrancisco.trajectories.path" in problems[2] and "licence form" in problems[2]
    cfg["downloads"] = {"enabled": True}
    problems, osm, traj = plan_inputs(cfg, data_root)
    assert osm == {"porto/osm/overpass.osm": cfg["cities"]["porto"]["bbox"]}
    assert traj == {"porto/train.csv.zip": {"url": "https://example.invalid/p.zip", "member": "train.csv.zip"}}
    assert len(problems) == 1 and "licence form" in problems[0]  # Cabspotting stays manual


def dry_run(repo, work: Path, cfg: dict, target: str = "results/porto/metatrl.csv"):
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", target, "--snakefile", str(repo / "Snakefile"),
                           "--directory", str(work), "--cores", "2", "--configfile", str(work / "config.yaml")],
                          capture_output=True, text=True, timeout=300, cwd=work)


def test_download_rules_are_planned_only_when_enabled(repo, data_root, tmp_path):
    """A data_root with San Francisco's and Chengdu's real files but no Porto file. Downloads off:
    the DAG stops before any job, naming each missing file and how to get it. On: the dry run
    plans download_trajectories and download_osm before Porto's ingest."""
    root = tmp_path / "data"
    for rel in ["sanfrancisco", "chengdu"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(data_root / rel)
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    cfg["data_root"] = str(root)
    porto = cfg["cities"]["porto"]
    porto["trajectories"].update(path="porto/train.csv.zip",
                                 download={"url": "https://example.invalid/p.zip", "member": "train.csv.zip"})
    porto["osm"] = {"file": "porto/osm/overpass.osm", "overpass": True}
    porto["pois"] = []
    work = tmp_path / "work"
    work.mkdir()
    off = dry_run(repo, work, cfg)
    out = off.stdout + off.stderr
    assert off.returncode != 0
    assert f"cities.porto.trajectories.path: {root}/porto/train.csv.zip does not exist" in out
    assert "ECML/PKDD 2015" in out and "set downloads.enabled: true" in out
    assert f"cities.porto.osm.file: {root}/porto/osm/overpass.osm does not exist" in out
    assert "Job stats" not in out and "rule ingest_trajectories" not in out
    cfg["downloads"] = {"enabled": True}
    on = dry_run(repo, work, cfg)
    assert on.returncode == 0, on.stderr[-3000:]
    assert "rule download_osm:" in on.stdout and "rule download_trajectories:" in on.stdout
    assert f"{root}/porto/osm/overpass.osm" in on.stdout and f"{root}/porto/train.csv.zip" in on.stdout
    assert not (root / "porto").exists()  # a dry run downloads nothing


def test_public_data_preset_plans_the_public_downloads(repo, tmp_path):
    """config/presets/public-data.yaml on an empty data_root: Porto's archive and both OSM
    extracts are downloads; Cabspotting and Chengdu are named as manual steps."""
    from snakemake.utils import update_config

    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load((repo / "config" / "presets" / "public-data.yaml").read_text()))
    problems, osm, traj = plan_inputs(cfg, tmp_path)
    assert set(osm) == {"porto/osm/porto_overpass.osm", "sanfrancisco/osm/sf_overpass.osm"}
    assert traj == {"porto/train.csv.zip": {"url": cfg["cities"]["porto"]["trajectories"]["download"]["url"],
                                            "member": "train.csv.zip"}}
    assert [p.split(":")[0] for p in problems] == ["cities.chengdu.trajectories.path",
                                                  "cities.sanfrancisco.trajectories.path"]
    assert "DeepTTE" in problems[0] and "licence form" in problems[1]
