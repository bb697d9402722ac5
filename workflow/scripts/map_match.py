"""Rule map_match (gather): the chunks of map_match_chunk, in order, streamed into matched.parquet
and the stage's tables, with the QC over the whole city (in = kept + rejected) counted on the way."""
from trajzoo.mapmatching.chunks import gather_chunk_files, interval_quantile
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
qc, tally = gather_chunk_files(snakemake.input.matched, snakemake.input.stats, snakemake.input.rejections,
                               snakemake.input.trips, snakemake.output.matched, snakemake.output.stats,
                               snakemake.output.rejections)
log.info("map matching %s (%d chunks): %s", snakemake.wildcards.city, len(snakemake.input.matched),
         qc.to_dict("records"))
log.info("points: %d in, %d in kept pieces", tally.points, tally.matched_points)
log.info("UBODT delta %g m; interval between fixes, 90th percentile: %.1f s measured on the trips, %s s configured "
         "(sampling_interval_s)", float(snakemake.params.ubodt_delta), interval_quantile(snakemake.input.trips, 0.9),
         snakemake.params.sampling_interval_s)
qc.to_csv(snakemake.output.qc, index=False)
