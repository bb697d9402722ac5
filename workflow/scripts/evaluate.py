"""Rule evaluate_<tasks>: the fine-tuning job of one run (one model on its target city in one
experiment setting and seed): load the city and the pretrained model once, then fine-tune and
score each of the run's tasks in order, writing per task its metrics, history, QC, per-trip test
predictions and fine-tuned head (trajzoo.evaluation.evaluate_run). Logs: ``finetune.log`` (the
loading and each task's start and duration) and one ``<task>.log`` per task."""
import torch

from trajzoo.evaluation import TASK_OUTPUTS, TaskJob, evaluate_run
from trajzoo.runlog import setup_rule_logging
from trajzoo.training.launch import run_rule


def main(job: dict, tasks: list[dict], inputs: dict, outputs: dict, logs: dict, threads: int) -> dict:
    """Run the job: ``job`` = params.job, ``tasks`` = params.tasks (name, options, checkpoint_dir,
    tensorboard_dir per task, in order), ``inputs`` / ``outputs`` / ``logs`` = the rule's named
    files (outputs ``<task>__<kind>``, logs ``finetune`` and ``<task>``), ``threads`` = the job's
    threads (split over the processes under data parallelism). Returns task name ->
    trajzoo.evaluation.EvaluationResult; only rank 0 writes the outputs."""
    log = setup_rule_logging(logs["finetune"])
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    torch.set_num_threads(max(1, threads // world))
    if world > 1:
        log.info("data parallel: %d processes (%s)", world, torch.distributed.get_backend())
    specs = [TaskJob(t["name"], t["options"], {k: outputs[f"{t['name']}__{k}"] for k in TASK_OUTPUTS},
                     t["checkpoint_dir"], t["tensorboard_dir"], logs[t["name"]]) for t in tasks]
    return evaluate_run(job, inputs, specs, log, log_to=setup_rule_logging, run_log=logs["finetune"])


def main_of_rule(smk) -> dict:
    """:func:`main` with the Snakemake object's values (what :func:`trajzoo.training.launch.run_rule`
    runs in each of the job's ``processes``)."""
    return main(smk.params.job, smk.params.tasks, dict(smk.input.items()), dict(smk.output.items()),
                dict(smk.log.items()), smk.threads)


if __name__ == "__main__":
    run_rule(main_of_rule, snakemake, snakemake.params.job.get("device", "cpu"))  # noqa: F821 (Snakemake's script global)
