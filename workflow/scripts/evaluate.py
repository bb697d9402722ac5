"""Rule evaluate: fine-tune one model on one task of its target city in one experiment setting
(fraction of the target's train/val data) and score the test split; write the per-trip test
predictions and the fine-tuned head (road tasks; trajzoo predict reads it)."""
import pandas as pd
import torch

from trajzoo.bundle import save_head, save_no_head
from trajzoo.evaluation import evaluate_task, load_city_and_model
from trajzoo.registry import get_task
from trajzoo.runlog import setup_rule_logging
from trajzoo.training.loop import RunContext, seed_everything, tensor_digest
from trajzoo.training.options import options_from_config, run_options
from trajzoo.training.launch import fan_out_script, stop_unless_writer

# data parallelism (job resource `processes` > 1, or torchrun): this script in K processes
if __name__ == "__main__" and fan_out_script(__file__, snakemake, snakemake.params.job.get("device", "cpu")):
    raise SystemExit(0)  # the K processes did the job
log = setup_rule_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
job = snakemake.params.job
seed_everything(job["seed"])
files = dict(snakemake.input.items())
features = torch.load(files.pop("features"), weights_only=True) if "features" in files else None
city, plugin, model, device = load_city_and_model(job, files)
task = get_task(snakemake.wildcards.task, **job["task_options"])
ctx = RunContext(device, job["seed"], snakemake.params.checkpoint_dir, log)
pretrained_digest = tensor_digest(model.state_dict())
wc = snakemake.wildcards  # TensorBoard (config training.tensorboard) under logs/tensorboard/<city>/eval/...
tensorboard_dir = f"logs/tensorboard/{wc.city}/eval/{wc.model}/{wc.variant}/{wc.exp}/seed{wc.seed}/{wc.task}"
with run_options(options_from_config(job.get("training_options"), device, tensorboard_dir)):
    result = evaluate_task(model, task, city, job["fraction"], job["finetune"], ctx, features=features, plugin=plugin)
stop_unless_writer()  # data parallelism: rank 0 alone writes the outputs
log.info("%s %s %s: %s", job["model"], job["setting"], task.name, result.metrics)
result.qc.to_csv(snakemake.output.qc, index=False)
pd.DataFrame([{"task": task.name, "metric": m, "value": v, "n_train": result.n_train, "n_test": result.n_test,
               "seed": job["seed"]} for m, v in result.metrics.items()]).to_csv(snakemake.output.metrics, index=False)
pd.DataFrame(result.history, columns=None if result.history else ["phase", "epoch", "train_loss", "val_loss"]).to_csv(
    snakemake.output.history, index=False)
(result.predictions if result.predictions is not None else pd.DataFrame({"trip_id": pd.Series(dtype=str)})).to_parquet(
    snakemake.output.predictions, index=False)
if result.finetuned is not None:
    save_head(snakemake.output.head, task, result.finetuned, job["task_options"], pretrained_digest)
else:
    save_no_head(snakemake.output.head, task, "no per-trip road head: " + {
        "embedding": "scored on embeddings without fine-tuning", "point": "a point task's recovery heads"}.get(
        task.input_kind, f"a {task.input_kind} task"))
