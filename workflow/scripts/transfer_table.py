"""Rule transfer_table: results/transfer/<model>.csv (source-setting rows with the in-city value
and the relative change), one matrix per setting, task and metric, and their heatmaps."""
from pathlib import Path

from trajzoo import plots
from trajzoo.experiments import long_results
from trajzoo.results import transfer_long, write_transfer_tables
from trajzoo.runlog import config_digest, setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
model = snakemake.wildcards.model
long = long_results(list(snakemake.input.parts), snakemake.params.part_keys, config_digest(snakemake.params.digest))
table = transfer_long(long)
table = table[table["model"] == model]
table.to_csv(snakemake.output.table, index=False, float_format="%.6g")
folder = Path(snakemake.output.matrices)
folder.mkdir(parents=True, exist_ok=True)
written = write_transfer_tables(long, model, folder)
plots.plot_transfer_heatmaps(table, Path(snakemake.output.heatmap), model)
log.info("%s: %d transfer rows, matrices %s", model, len(table), written)
