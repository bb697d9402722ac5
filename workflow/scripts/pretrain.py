"""Rule pretrain: self-supervised pretraining of a registered model on the target city
(and, for cross-city models, the source cities)."""
import pandas as pd
import torch

from trajzoo.data.city import load_city
from trajzoo.registry import get_model
from trajzoo.runlog import setup_rule_logging
from trajzoo.training.loop import RunContext, resolve_device, save_encoder, seed_everything

log = setup_rule_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
settings = snakemake.params.settings
seed_everything(settings["seed"])
city = snakemake.wildcards.city
zones = snakemake.params.cities
keys = ("matched", "splits", "structural", "attributes", "transitions")
target = load_city(city, zones[city], **{k: snakemake.input[f"target_{k}"] for k in keys})
sources = [load_city(src, zones[src], **{k: snakemake.input[f"source{i}_{k}"] for k in keys})
           for i, src in enumerate(settings["sources"])]
log.info("pretraining %s (%s) on target %s (%d trips) with sources %s", settings["model"], settings["variant"],
         city, len(target.trips), {s.name: len(s.trips) for s in sources})
ctx = RunContext(resolve_device(settings["device"]), settings["seed"], snakemake.params.checkpoint_dir, log)
plugin = get_model(settings["model"])
encoder = plugin.pretrain(target, sources, {"hparams": settings["hparams"], "pretrain": settings["pretrain"]}, ctx)
save_encoder(snakemake.output.encoder, encoder, settings["model"], settings["hparams"], target.graph)
pd.DataFrame(ctx.history, columns=["phase", "epoch", "train_loss", "val_loss"]).to_csv(snakemake.output.history,
                                                                              index=False)
