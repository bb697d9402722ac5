"""Rule qc_report: results/<city>/qc.md, the data accounting of every stage and task."""
from pathlib import Path

import pandas as pd

from trajzoo.results import qc_markdown
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
stages = pd.concat([pd.read_csv(p) for p in snakemake.input.stages], ignore_index=True)
tasks = pd.concat([pd.read_csv(p) for p in snakemake.input.tasks], ignore_index=True)
text = qc_markdown(snakemake.wildcards.city, pd.concat([stages, tasks], ignore_index=True))
Path(snakemake.output.qc).write_text(text)
log.info("\n%s", text)
