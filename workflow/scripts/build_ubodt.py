"""Rule build_ubodt: road segments -> fastmm's UBODT cache of the city, built once for every chunk."""
import pandas as pd

from trajzoo.mapmatching.fmm import MatchParams, build_ubodt
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
segments = pd.read_parquet(snakemake.input.segments)
path = build_ubodt(segments, MatchParams(ubodt_delta=float(snakemake.params.ubodt_delta)), snakemake.output.ubodt)
log.info("UBODT %s: %s (%.1f MB)", snakemake.wildcards.city, path, path.stat().st_size / 1e6)
