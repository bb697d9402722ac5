"""Rule summary: results/<city>/summary.md, the runs side by side, with the data accounting."""
from pathlib import Path

import pandas as pd

from trajzoo.results import summary_markdown
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
rows = []
for path in snakemake.input.parts:
    part = pd.read_csv(path)
    part["run"] = Path(path).parent.name
    rows.append(part)
qc = pd.concat([pd.read_csv(p) for p in snakemake.input.qc], ignore_index=True)
text = summary_markdown(snakemake.wildcards.city, pd.concat(rows, ignore_index=True), qc)
Path(snakemake.output.summary).write_text(text)
log.info("\n%s", text)
