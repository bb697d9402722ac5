"""Rule evaluate_<tasks>: the fine-tuning job of one run (one model on its target city in one
experiment setting and seed): load the city and the pretrained model once, then fine-tune and
score each of the run's tasks in order, writing per task its metrics, history, QC, per-trip test
predictions and fine-tuned head (trajzoo.evaluation.evaluate_run). Logs: ``finetune.log`` (the
loading and each task's start and duration) and one ``<task>.log`` per task."""
import torch

from trajzoo.evaluation import TASK_OUTPUTS, TaskJob, evaluate_run
from trajzoo.runlog import setup_rule_logging


def main(job: dict, tasks: list[dict], inputs: dict, outputs: dict, logs: dict, threads: int) -> dict:
    """Run the job: ``job`` = params.job, ``tasks`` = params.tasks (name, options, checkpoint_dir,
    tensorboard_dir per task, in order), ``inputs`` / ``outputs`` / ``logs`` = the rule's named
    files (outputs ``<task>__<kind>``, logs ``finetune`` and ``<task>``), ``threads`` = the job's
    threads. Returns task name -> trajzoo.evaluation.EvaluationResult."""
    log = setup_rule_logging(logs["finetune"])
    torch.set_num_threads(threads)
    specs = [TaskJob(t["name"], t["options"], {k: outputs[f"{t['name']}__{k}"] for k in TASK_OUTPUTS},
                     t["checkpoint_dir"], t["tensorboard_dir"], logs[t["name"]]) for t in tasks]
    return evaluate_run(job, inputs, specs, log, log_to=setup_rule_logging, run_log=logs["finetune"])


if "snakemake" in globals():
    main(snakemake.params.job, snakemake.params.tasks, dict(snakemake.input.items()),
         dict(snakemake.output.items()), dict(snakemake.log.items()), snakemake.threads)
