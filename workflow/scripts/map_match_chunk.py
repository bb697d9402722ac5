"""Rule map_match_chunk: one scatter chunk of trips.parquet -> its matched, stats and rejections tables,
matched and written batch by batch (memory bounded by the batch, not the chunk)."""
import pandas as pd

from trajzoo.mapmatching.chunks import match_chunk, parse_scatter_item
from trajzoo.mapmatching.fmm import MatchParams
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
chunk, n_chunks = parse_scatter_item(snakemake.wildcards.scatteritem)
segments = pd.read_parquet(snakemake.input.segments)
params = MatchParams.from_dict(snakemake.params.map_matching)
counts = match_chunk(snakemake.input.trips, segments, snakemake.params.crs, params, snakemake.input.ubodt, chunk,
                     n_chunks, snakemake.output.matched, snakemake.output.stats, snakemake.output.rejections,
                     workers=snakemake.threads)
log.info("map matching %s chunk %d of %d: %d trips in, %d kept, %d rejected, %d batches (UBODT delta %g m)",
         snakemake.wildcards.city, chunk + 1, n_chunks, counts["trips"], counts["kept"], counts["rejected"],
         counts["batches"], params.ubodt_delta)
