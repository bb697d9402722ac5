"""Rule evaluate: fine-tune one model on one task of its target city in one experiment setting
(fraction of the target's train/val data) and score the test split."""
import pandas as pd
import torch

from trajzoo.evaluation import evaluate_task, load_city_and_model
from trajzoo.registry import get_task
from trajzoo.runlog import setup_rule_logging
from trajzoo.training.loop import RunContext, seed_everything

log = setup_rule_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
job = snakemake.params.job
seed_everything(job["seed"])
files = dict(snakemake.input.items())
features = torch.load(files.pop("features"), weights_only=True) if "features" in files else None
city, plugin, model, device = load_city_and_model(job, files)
task = get_task(snakemake.wildcards.task, **job["task_options"])
ctx = RunContext(device, job["seed"], snakemake.params.checkpoint_dir, log)
result = evaluate_task(model, task, city, job["fraction"], job["finetune"], ctx, features=features)
log.info("%s %s %s: %s", job["model"], job["setting"], task.name, result.metrics)
result.qc.to_csv(snakemake.output.qc, index=False)
pd.DataFrame([{"task": task.name, "metric": m, "value": v, "n_train": result.n_train, "n_test": result.n_test,
               "seed": job["seed"]} for m, v in result.metrics.items()]).to_csv(snakemake.output.metrics, index=False)
pd.DataFrame(result.history, columns=None if result.history else ["phase", "epoch", "train_loss", "val_loss"]).to_csv(
    snakemake.output.history, index=False)
