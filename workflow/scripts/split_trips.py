"""Rule split_trips: seeded train/val/test split of the matched trips."""
import pandas as pd

from trajzoo.runlog import setup_rule_logging
from trajzoo.splits import split_trips

log = setup_rule_logging(snakemake.log[0])
matched = pd.read_parquet(snakemake.input.matched, columns=["trip_id"])
cfg = dict(snakemake.params.split)
seed = cfg.pop("seed")
splits, qc = split_trips(matched["trip_id"], cfg, seed, snakemake.params.max_train_trips)
log.info("split %s: %s", snakemake.wildcards.city, splits["split"].value_counts().to_dict())
splits.to_parquet(snakemake.output.splits, index=False)
qc.to_csv(snakemake.output.qc, index=False)
