"""Rule map_match: trips -> map-matched road segment sequences with entry times (fastmm)."""
import pandas as pd

from trajzoo.mapmatching.fmm import MatchParams, match_trips
from trajzoo.qc import stage_counts
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
trips = pd.read_parquet(snakemake.input.trips)
segments = pd.read_parquet(snakemake.input.segments)
params = MatchParams.from_dict(snakemake.params.map_matching)
matched, stats, rejections = match_trips(trips, segments, snakemake.params.crs, params,
                                         snakemake.params.ubodt_dir, workers=snakemake.threads)
qc = stage_counts("map_matching", len(trips), len(matched), rejections["reason"])
log.info("map matching %s: %s", snakemake.wildcards.city, qc.to_dict("records"))
log.info("points: %d in, %d in kept pieces", int(stats["n_points"].sum()), int(stats["matched_points"].sum()))
matched.to_parquet(snakemake.output.matched, index=False)
stats.to_parquet(snakemake.output.stats, index=False)
rejections.to_parquet(snakemake.output.rejections, index=False)
qc.to_csv(snakemake.output.qc, index=False)
