"""Rule ingest_trajectories: raw GPS file -> trips.parquet (streamed block by block), rejections, QC counts.

With a road network (input ``segments``), trips that leave its extent plus
``filters.network_buffer_m`` are rejected ``outside_network``, and a city whose ``bbox`` is null
uses that extent as its bounding box.
"""
from trajzoo.ingest import city_coverage, ingest_city_to_parquet
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
segments = getattr(snakemake.input, "segments", None)  # one path, or empty for a city without roads
segments = segments if isinstance(segments, str) else (segments[0] if segments else None)
coverage = city_coverage(snakemake.params.city, segments)
if coverage is not None:
    log.info("network coverage %s: %s (bbox %s)", snakemake.wildcards.city, coverage, coverage.bbox_degrees())
qc = ingest_city_to_parquet(snakemake.params.city, snakemake.params.data_root,
                            snakemake.output.trips, snakemake.output.rejections, coverage=coverage)
log.info("ingest %s: %s", snakemake.wildcards.city, qc.to_dict("records"))
qc.to_csv(snakemake.output.qc, index=False)
