"""Rule summary: results/<city>/summary.{md,csv}, every model and setting on the target side by side
(best and second best marked, improvement of the reference model), with the data accounting."""
from pathlib import Path

import pandas as pd

from trajzoo.experiments import long_results
from trajzoo.results import summary_markdown, summary_table
from trajzoo.runlog import config_digest, setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
long = long_results(list(snakemake.input.parts), snakemake.params.part_keys, config_digest(snakemake.params.digest))
qc = pd.concat([pd.read_csv(p) for p in snakemake.input.qc], ignore_index=True)
text = summary_markdown(snakemake.wildcards.city, long, qc, snakemake.params.reference_model)
Path(snakemake.output.summary).write_text(text)
summary_table(long).to_csv(snakemake.output.table, index=False, float_format="%.6g")
log.info("\n%s", text)
