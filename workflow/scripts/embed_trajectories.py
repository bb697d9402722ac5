"""Rule embed_trajectories: trip id -> d-dimensional trajectory embedding (pretrained encoder)."""
import pandas as pd
import torch

from trajzoo.data.city import load_city, trip_rows
from trajzoo.runlog import setup_rule_logging
from trajzoo.training.loop import embed_trips, load_encoder, resolve_device, seed_everything

log = setup_rule_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
settings = snakemake.params.settings
seed_everything(settings["seed"])
city = load_city(snakemake.wildcards.city, snakemake.params.timezone,
                 **{k: snakemake.input[k] for k in ("matched", "splits", "structural", "attributes", "transitions")})
device = resolve_device(settings["device"])
encoder = load_encoder(snakemake.input.encoder, city.graph, device)
emb = embed_trips(encoder, city.graph, trip_rows(city.trips), 128, device)
out = pd.DataFrame({"trip_id": city.trips["trip_id"], "split": city.trips["split"], "embedding": list(emb)})
log.info("%d embeddings of dimension %d", len(out), emb.shape[1])
out.to_parquet(snakemake.output.embeddings, index=False)
