"""Rule download_osm: the city's bbox through Overpass (osmnx) -> osm.file + provenance record."""
from trajzoo.download import fetch_osm_overpass
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
record = fetch_osm_overpass(snakemake.params.bbox, snakemake.output.osm)
log.info("%s: %s", snakemake.output.osm, record)
