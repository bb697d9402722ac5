"""Rule build_ubodt: road segments -> fastmm's UBODT cache of the city, built once for every chunk.

Writes ``ubodt.json`` beside the table: the delta used (m) and how it was chosen (config number, or
``auto`` from the sampling interval: :func:`trajzoo.mapmatching.fmm.resolve_ubodt_delta`).
"""
import json
from pathlib import Path

import pandas as pd

from trajzoo.mapmatching.fmm import MatchParams, build_ubodt, describe_ubodt_delta
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
delta = float(snakemake.params.ubodt_delta)
how = describe_ubodt_delta(snakemake.config["cities"][snakemake.wildcards.city])
log.info("UBODT %s: %s", snakemake.wildcards.city, how)
segments = pd.read_parquet(snakemake.input.segments)
path = build_ubodt(segments, MatchParams(ubodt_delta=delta), snakemake.output.ubodt)
log.info("UBODT %s: %s (%.1f MB)", snakemake.wildcards.city, path, path.stat().st_size / 1e6)
(Path(snakemake.output.ubodt) / "ubodt.json").write_text(json.dumps(
    {"city": snakemake.wildcards.city, "ubodt_delta_m": delta, "how": how, "file": path.name,
     "size_bytes": path.stat().st_size}, indent=1) + "\n")
