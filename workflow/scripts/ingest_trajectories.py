"""Rule ingest_trajectories: raw GPS file -> trips.parquet (streamed block by block), rejections, QC counts."""
from trajzoo.ingest import ingest_city_to_parquet
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
qc = ingest_city_to_parquet(snakemake.params.city, snakemake.params.data_root,
                            snakemake.output.trips, snakemake.output.rejections)
log.info("ingest %s: %s", snakemake.wildcards.city, qc.to_dict("records"))
qc.to_csv(snakemake.output.qc, index=False)
