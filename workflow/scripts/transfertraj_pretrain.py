"""Rule transfertraj_pretrain: masked-modality pretraining of TransferTraj on the train split of
the target city (setting in-city) or of the source cities only (zero-/few-shot settings)."""
import pandas as pd
import torch

from trajzoo.data.points import point_rows
from trajzoo.registry import get_model
from trajzoo.runlog import setup_rule_logging
from trajzoo.training.loop import RunContext, resolve_device, seed_everything

log = setup_rule_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
seed = int(snakemake.wildcards.seed)
seed_everything(seed)
rows, val_rows = {}, {}
for city, points_path, splits_path in zip(snakemake.params.cities, snakemake.input.points, snakemake.input.splits):
    points = pd.read_parquet(points_path).merge(pd.read_parquet(splits_path), on="trip_id", how="inner",
                                                validate="one_to_one")
    rows[city] = point_rows(points[points["split"] == "train"])
    val_rows[city] = point_rows(points[points["split"] == "val"])
    log.info("%s: %d train and %d val trajectories (test and unused trips are never read)", city,
             len(rows[city]), len(val_rows[city]))
plugin = get_model("transfertraj")
device = resolve_device(snakemake.params.device)
model = plugin.build(snakemake.params.hparams).to(device)
ctx = RunContext(device, seed, snakemake.params.checkpoint_dir, log)
history = plugin.pretrain(model, rows, snakemake.params.pretrain, ctx, val_rows)
plugin.save(snakemake.output.model, model, {"pretrain_cities": list(rows), "variant": snakemake.wildcards.variant,
                                            "seed": seed})
pd.DataFrame(history).to_csv(snakemake.output.history, index=False)
