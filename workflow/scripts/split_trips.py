"""Rule split_trips: the city's one seeded train/val/test split of its ingested trips, by trip id."""
import pandas as pd

from trajzoo.qc import check_stage_io, parquet_rows
from trajzoo.runlog import setup_rule_logging
from trajzoo.splits import split_trips

log = setup_rule_logging(snakemake.log[0])
trips = pd.read_parquet(snakemake.input.trips, columns=["trip_id"])
cfg = dict(snakemake.params.split)
seed = cfg.pop("seed")
caps = snakemake.params.caps
splits, qc = split_trips(trips["trip_id"], cfg, seed, caps["max_train_trips"], caps["max_val_trips"],
                         caps["max_test_trips"])
log.info("split %s: %s", snakemake.wildcards.city, splits["split"].value_counts().to_dict())
splits.to_parquet(snakemake.output.splits, index=False)
check_stage_io(qc, "split", n_read=parquet_rows(snakemake.input.trips), n_written=int((splits["split"] != "unused").sum()))
qc.to_csv(snakemake.output.qc, index=False)
