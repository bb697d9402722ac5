"""Rule results_table: one long-format CSV per run: one row per (task, metric)."""
import pandas as pd

from trajzoo.runlog import config_digest, setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
settings = snakemake.params.settings
parts = pd.concat([pd.read_csv(p) for p in snakemake.input.parts], ignore_index=True)
table = pd.DataFrame({
    "city": snakemake.wildcards.city,
    "model": settings["model"],
    "variant": settings["variant"],
    "source_cities": "+".join(settings["sources"]) or "none",
    "task": parts["task"],
    "metric": parts["metric"],
    "value": parts["value"],
    "n_train": parts["n_train"],
    "n_test": parts["n_test"],
    "seed": parts["seed"],
    "config_digest": config_digest(snakemake.params.digest),
})
log.info("\n%s", table.to_string())
table.to_csv(snakemake.output.table, index=False, float_format="%.6g")
