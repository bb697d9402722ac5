"""Rule build_road_network: OSM -> road segments + segment adjacency."""
from trajzoo.roads.network import build_road_network
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
segments, adjacency = build_road_network(snakemake.params.osm, snakemake.params.data_root,
                                         snakemake.params.crs, snakemake.params.bbox)
log.info("%s: %d road segments, %d adjacent pairs", snakemake.wildcards.city, len(segments), len(adjacency))
segments.to_parquet(snakemake.output.segments, index=False)
adjacency.to_parquet(snakemake.output.adjacency, index=False)
