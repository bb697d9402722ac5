"""Rule finetune_task: fine-tune the pretrained encoder on one downstream task, score the test split."""
import pandas as pd
import torch

from trajzoo.data.city import load_city
from trajzoo.registry import get_task
from trajzoo.runlog import setup_rule_logging
from trajzoo.training.loop import (FineTuneConfig, RunContext, finetune_and_evaluate, load_encoder,
                                   resolve_device, seed_everything)

log = setup_rule_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
settings = snakemake.params.settings
seed_everything(settings["seed"])
city = load_city(snakemake.wildcards.city, snakemake.params.timezone,
                 **{k: snakemake.input[k] for k in ("matched", "splits", "structural", "attributes", "transitions")})
task = get_task(snakemake.wildcards.task, **snakemake.params.task_options)
data = task.prepare(city)
data.qc.to_csv(snakemake.output.qc, index=False)
device = resolve_device(settings["device"])
encoder = load_encoder(snakemake.input.encoder, city.graph, device)
ctx = RunContext(device, settings["seed"], snakemake.params.checkpoint_dir, log)
result = finetune_and_evaluate(encoder, city.graph, task, data, FineTuneConfig.from_dict(snakemake.params.finetune), ctx)
log.info("%s %s: %s", snakemake.wildcards.run, task.name, result)
rows = [{"task": task.name, "metric": m, "value": v, "n_train": result["n_train"], "n_test": result["n_test"],
         "seed": settings["seed"], "best_epoch": result["best_epoch"]} for m, v in result["metrics"].items()]
pd.DataFrame(rows).to_csv(snakemake.output.metrics, index=False)
pd.DataFrame(ctx.history).to_csv(snakemake.output.history, index=False)
