"""Rules model_table and ablation_table: experiments' evaluation outputs in the long result format."""
from trajzoo.experiments import long_results
from trajzoo.runlog import config_digest, setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
table = long_results(list(snakemake.input.parts), snakemake.params.part_keys, config_digest(snakemake.params.digest))
log.info("\n%s", table.to_string())
table.to_csv(snakemake.output.table, index=False, float_format="%.6g")
