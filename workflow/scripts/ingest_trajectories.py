"""Rule ingest_trajectories: raw GPS file -> trips.parquet (streamed block by block), rejections, QC counts.

With a road network (input ``segments``), trips with a fix farther than ``filters.network_buffer_m``
from every road, or outside the OSM extract's declared box grown by as much, are rejected
``outside_network``; a city whose ``bbox`` is null uses that box (else the network's extent).
"""
from trajzoo.ingest import city_coverage, ingest_city_to_parquet
from trajzoo.qc import check_stage_io, parquet_rows
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
segments = getattr(snakemake.input, "segments", None)  # one path, or empty for a city without roads
segments = segments if isinstance(segments, str) else (segments[0] if segments else None)
coverage = city_coverage(snakemake.params.city, segments, snakemake.params.data_root)
if coverage is not None:
    log.info("network coverage %s: %s (bbox %s)", snakemake.wildcards.city, coverage, coverage.bbox_degrees())
qc = ingest_city_to_parquet(snakemake.params.city, snakemake.params.data_root,
                            snakemake.output.trips, snakemake.output.rejections, coverage=coverage)
log.info("ingest %s: %s", snakemake.wildcards.city, qc.to_dict("records"))
check_stage_io(qc, "ingest", n_written=parquet_rows(snakemake.output.trips))  # the file holds what QC says
qc.to_csv(snakemake.output.qc, index=False)
