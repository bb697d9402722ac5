"""Rule pretrain: one pretraining of any registered model (or, for the untrained setting, its
fresh initialisation) on the cities of its training key.

Data parallelism: with the job resource ``processes`` = K > 1 (profiles/default), or under
torchrun, :func:`main` runs in K processes (:func:`trajzoo.training.launch.run_rule`); rank 0
alone writes the log, the model and the history."""
import pandas as pd
import torch

from trajzoo.data.prepared import load_prepared
from trajzoo.registry import get_model
from trajzoo.runlog import setup_rule_logging
from trajzoo.training.launch import is_writer, run_rule
from trajzoo.training.loop import RunContext, resolve_device, seed_everything
from trajzoo.training.options import options_from_config, run_options


def main(smk):
    """The rule's body for the Snakemake object ``smk`` (in every data-parallel process)."""
    writer = is_writer()
    log = setup_rule_logging(smk.log[0])  # rank 0 only (trajzoo.runlog)
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    torch.set_num_threads(max(1, smk.threads // world))  # the job's threads, shared by its processes
    job = smk.params.job
    seed_everything(job["seed"])
    files = dict(smk.input.items())

    def prepared(city):
        prefix = f"{city}__"
        return load_prepared(city, job["timezones"][city], job["inputs"],
                             {k[len(prefix):]: v for k, v in files.items() if k.startswith(prefix)})

    target = prepared(job["target"]) if job["target"] else None
    sources = [prepared(c) for c in job["sources"]]
    plugin = get_model(job["model"])
    ctx = RunContext(resolve_device(job["device"]), job["seed"], smk.params.checkpoint_dir, log)
    log.info("%s (%s), setting %s: target %s, sources %s", job["model"], job["variant"], job["setting"],
             job["target"], job["sources"])
    if torch.distributed.is_initialized():
        log.info("data parallel: %d processes (%s)", torch.distributed.get_world_size(),
                 torch.distributed.get_backend())
    # TensorBoard (config training.tensorboard): logs/tensorboard/models/<model>/<variant>/<training>/seed<s>/<phase>
    wc = smk.wildcards
    options = options_from_config(job.get("training_options"), ctx.device,
                                  f"logs/tensorboard/models/{wc.model}/{wc.variant}/{wc.training}/seed{wc.seed}")
    log.info("training options: %s", options)
    if job["setting"] == "untrained":
        model = plugin.build(target, job["section"]["hparams"])
    else:
        section = job["section"]
        if job.get("dependencies"):  # other zoo models' pretrainings this one reads (models.smk)
            section = {**section, "dependencies": {m: files[f"dependency__{m}"] for m in job["dependencies"]}}
        with run_options(options):
            model = plugin.pretrain(target, sources, section, ctx)
    if not writer:  # data parallelism: the other processes only computed
        return
    plugin.save(smk.output.model, model, target,
                {"hparams": job["section"]["hparams"], "training": job["training"], "variant": job["variant"],
                 "seed": job["seed"]})
    pd.DataFrame(ctx.history).reindex(columns=list(dict.fromkeys(
        ["phase", "epoch", "train_loss", "val_loss", *[k for h in ctx.history for k in h]]))).to_csv(
        smk.output.history, index=False)


if __name__ == "__main__":
    run_rule(main, snakemake, snakemake.params.job["device"])  # noqa: F821 (Snakemake's script global)
