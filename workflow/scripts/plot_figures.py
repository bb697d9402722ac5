"""Rules plot_*: the report's figures (one script, dispatched on the rule name)."""
from pathlib import Path

import pandas as pd

from trajzoo import plots
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
city = snakemake.wildcards.city
out = Path(snakemake.output.figure)
rule = snakemake.rule
if rule == "plot_network":
    plots.plot_network(pd.read_parquet(snakemake.input.segments),
                       pd.read_parquet(snakemake.input.matched, columns=["trip_id", "roads"]), out, city)
elif rule == "plot_map_matching":
    plots.plot_map_matching(pd.read_parquet(snakemake.input.stats), out, city)
elif rule == "plot_losses":
    histories = {}
    for label, (pretrain, finetune) in snakemake.params.runs.items():
        parts = [pd.read_csv(p) for p in [pretrain, *finetune]]
        parts = [p for p in parts if len(p)]  # an untrained model has an empty pretraining history
        histories[label] = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=["phase", "epoch", "train_loss", "val_loss"])
    plots.plot_losses(histories, out, city)
elif rule == "plot_metrics":
    plots.plot_metrics(pd.read_csv(snakemake.input.table), out, city)
else:
    raise ValueError(f"plot_figures.py does not know rule {rule}")
log.info("wrote %s", out)
