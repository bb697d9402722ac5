"""Rule transfertraj_evaluate: one point task (TP, TR or OD-TTE) of the target city in one
transfer setting: in-city (fine-tuned on the whole train split), zero-shot (no target data at all:
the pretrained recovery heads answer the task directly), few-shot (fine-tuned on a nested
seeded fraction of the train split). Scores the test split."""
import pandas as pd
import torch

from trajzoo.data.points import point_rows
from trajzoo.registry import get_model, get_task
from trajzoo.runlog import setup_rule_logging
from trajzoo.splits import few_shot_subset
from trajzoo.training.loop import RunContext, resolve_device, seed_everything
from trajzoo.training.point_tasks import PointFineTuneConfig, evaluate_point_task, finetune_point_task

log = setup_rule_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
wc = snakemake.wildcards
seed = int(wc.seed)
seed_everything(seed)
city = wc.city
task = get_task(wc.task)
plugin = get_model("transfertraj")
device = resolve_device(snakemake.params.device)
model = plugin.load(snakemake.input.model, device)
# OD-TTE reads only the first and the last point: collate whole trips so the destination is the
# trip's real one; TP and TR read the first max_len points, as in pretraining.
max_len = 10**6 if task.name == "od_tte" else model.config.max_len

points = pd.read_parquet(snakemake.input.points).merge(pd.read_parquet(snakemake.input.splits), on="trip_id",
                                                       how="inner", validate="one_to_one")
by_split = {s: point_rows(points[points["split"] == s]) for s in ("train", "val", "test")}
eligible, qcs = {}, []
for s, rows in by_split.items():
    eligible[s], qc = task.eligible(rows)
    qcs.append(qc.assign(split=s))
pd.concat(qcs, ignore_index=True).to_csv(snakemake.output.qc, index=False)

fraction = float(snakemake.params.fraction)
train = eligible["train"]
if 0 < fraction < 1:
    keep = set(few_shot_subset([r["trip_id"] for r in train], fraction, seed))
    train = [r for r in train if r["trip_id"] in keep]
elif fraction == 0:
    train = []
log.info("%s %s %s: fine-tuning on %d of %d eligible train trips (fraction %g), %d val, %d test", wc.variant,
         wc.setting, task.name, len(train), len(eligible["train"]), fraction, len(eligible["val"]),
         len(eligible["test"]))
cfg = PointFineTuneConfig.from_dict({**snakemake.params.finetune, "max_len": max_len})
ctx = RunContext(device, seed, snakemake.params.checkpoint_dir, log)
history = finetune_point_task(model, task, train, eligible["val"], cfg, ctx, city) if train else []
result = evaluate_point_task(model, task, eligible["test"], cfg.batch_size, device, city, max_len)
log.info("%s", result)
rows = [{"task": task.name, "metric": m, "value": v, "n_train": len(train), "n_test": len(eligible["test"]),
         "seed": seed} for m, v in ((m, result[m]) for m in task.metric_names)]
pd.DataFrame(rows).to_csv(snakemake.output.metrics, index=False)
pd.DataFrame(history, columns=["phase", "epoch", "train_loss", "val_loss"] if not history else None).to_csv(
    snakemake.output.history, index=False)
