"""Rule location_features: a model's frozen features of every task location of a city, from the
city's TRAIN trips only (trajzoo.locations.train_view), shared by every location task's head."""
import torch

from trajzoo.evaluation import load_city_and_model
from trajzoo.locations import train_view
from trajzoo.runlog import setup_rule_logging
from trajzoo.training.loop import atomic_save, seed_everything

log = setup_rule_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
job = snakemake.params.job
seed_everything(job["seed"])
city, plugin, model, device = load_city_and_model(job, dict(snakemake.input.items()))
inputs = train_view(city)
features = {k: v.cpu() for k, v in model.location_features(inputs, device).items()}
log.info("%s on %s: features of %d locations from %d train trips: %s", job["model"], job["city"], len(inputs.table),
         len(inputs.rows), {k: tuple(v.shape) for k, v in features.items()})
atomic_save(features, snakemake.output.features)
