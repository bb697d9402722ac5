"""Rule embed: trip id -> d-dimensional trajectory embedding from a model's default-setting pretraining."""
import pandas as pd
import torch

from trajzoo.evaluation import load_city_and_model
from trajzoo.runlog import setup_rule_logging
from trajzoo.training.loop import seed_everything

log = setup_rule_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
job = snakemake.params.job
seed_everything(job["seed"])
city, plugin, model, device = load_city_and_model(job, dict(snakemake.input.items()))
trip_ids, emb = plugin.embed(model, city, device)
splits = pd.read_parquet(snakemake.input.splits).set_index("trip_id")["split"]
out = pd.DataFrame({"trip_id": trip_ids, "split": splits.reindex(trip_ids).to_numpy(), "embedding": list(emb)})
log.info("%d embeddings of dimension %d", len(out), emb.shape[1] if emb.ndim == 2 else 0)
out.to_parquet(snakemake.output.embeddings, index=False)
