"""Rule summary: results/<city>/summary.{md,csv}, the compared runs side by side (best and second
best marked, improvement of the first model over the other models), with the data accounting."""
from pathlib import Path

import pandas as pd

from trajzoo.results import summary_markdown, summary_table
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
rows = []
for path in snakemake.input.parts:
    part = pd.read_csv(path)
    part["run"] = Path(path).parent.parent.name  # results/<city>/eval/<run>/seed<k>/<task>.csv
    rows.append(part)
parts = pd.concat(rows, ignore_index=True)
qc = pd.concat([pd.read_csv(p) for p in snakemake.input.qc], ignore_index=True)
model_run = snakemake.params.model_run
baselines = [r for r in snakemake.params.baseline_runs if r in set(parts["run"])]
text = summary_markdown(snakemake.wildcards.city, parts, qc, model_run, baselines)
Path(snakemake.output.summary).write_text(text)
summary_table(parts).to_csv(snakemake.output.table, index=False, float_format="%.6g")
log.info("\n%s", text)
