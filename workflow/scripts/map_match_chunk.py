"""Rule map_match_chunk: one scatter chunk of trips.parquet -> its matched, stats and rejections tables."""
import pandas as pd

from trajzoo.mapmatching.chunks import match_chunk, parse_scatter_item
from trajzoo.mapmatching.fmm import MatchParams
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
chunk, n_chunks = parse_scatter_item(snakemake.wildcards.scatteritem)
segments = pd.read_parquet(snakemake.input.segments)
params = MatchParams.from_dict(snakemake.params.map_matching)
matched, stats, rejections = match_chunk(snakemake.input.trips, segments, snakemake.params.crs, params,
                                         snakemake.input.ubodt, chunk, n_chunks, workers=snakemake.threads)
log.info("map matching %s chunk %d of %d: %d trips in, %d kept, %d rejected (UBODT delta %g m)",
         snakemake.wildcards.city, chunk + 1, n_chunks, len(stats), len(matched), len(rejections), params.ubodt_delta)
matched.to_parquet(snakemake.output.matched, index=False)
stats.to_parquet(snakemake.output.stats, index=False)
rejections.to_parquet(snakemake.output.rejections, index=False)
