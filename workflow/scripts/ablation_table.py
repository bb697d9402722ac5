"""Rule ablation_table: the model's full run, its variants and its ablations in one long table."""
import pandas as pd

from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
table = pd.concat([pd.read_csv(p) for p in snakemake.input.tables], ignore_index=True)
log.info("\n%s", table.pivot_table(index="variant", columns=["task", "metric"], values="value").to_string())
table.to_csv(snakemake.output.table, index=False, float_format="%.6g")
