"""Rule model_bundle: one pretraining -> a self-contained model folder (trajzoo.bundle)."""
import tempfile
from pathlib import Path

from trajzoo.bundle import ROAD_TABLES, write_bundle
from trajzoo.ingest.coverage import osm_bounds
from trajzoo.points import read_pois
from trajzoo.runlog import config_digest, setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
files = dict(snakemake.input.items())
meta = dict(snakemake.params.meta)
meta["config_digest"] = config_digest(meta.pop("config"))
osm = snakemake.params.osm
meta["network_bounds"] = osm_bounds(Path(osm)) if osm and Path(osm).is_file() else None
roads = {t: files[t] for t in ROAD_TABLES if t in files} or None
with tempfile.TemporaryDirectory() as tmp:
    context = {}
    if files.get("context_segments"):
        context["segments"] = files["context_segments"]
    pois = [p for p in (files.get("pois") or [])] if not isinstance(files.get("pois"), str) else [files["pois"]]
    if pois:
        context["pois"] = str(Path(tmp) / "pois.parquet")
        read_pois([Path(p) for p in pois]).to_parquet(context["pois"], index=False)
    out = write_bundle(snakemake.output.bundle, files["model"], meta, road_tables=roads, context=context or None)
log.info("bundle %s: %s (%s), city %s, digest %s", out, meta["model"], meta["training"], meta["city"],
         meta["config_digest"])
