"""Rule ingest_trajectories: raw GPS file -> trips.parquet, rejections, QC counts."""
from trajzoo.ingest import ingest_city
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
trips, rejections, qc = ingest_city(snakemake.params.city, snakemake.params.data_root)
log.info("ingest %s: %s", snakemake.wildcards.city, qc.to_dict("records"))
trips.to_parquet(snakemake.output.trips, index=False)
rejections.to_parquet(snakemake.output.rejections, index=False)
qc.to_csv(snakemake.output.qc, index=False)
