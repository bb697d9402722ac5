"""Rule interpolation_baseline: the linear-interpolation reference of a point task that recovers
x, y (TP, TR) on the target city's TEST split, with the same eligibility and the same points per
trajectory (max_len) as the point model whose table shows it (trajzoo.tasks.point_base)."""
import pandas as pd

from trajzoo.data.prepared import load_prepared
from trajzoo.registry import get_task
from trajzoo.runlog import setup_rule_logging
from trajzoo.tasks.point_base import interpolation_baseline

log = setup_rule_logging(snakemake.log[0])
job = snakemake.params.job
city = load_prepared(job["city"], job["timezone"], {"points"}, dict(snakemake.input.items()))
task = get_task(snakemake.wildcards.task, **job["task_options"])
rows, qc = task.eligible(city.points["test"])
result = interpolation_baseline(task, rows, job["city"], max_len=job["max_len"])
log.info("linear interpolation, %s on %s (max_len %d): %s", task.name, job["city"], job["max_len"], result)
pd.DataFrame([{"task": task.name, "metric": m, "value": result[m], "n_train": 0, "n_test": result["n"],
               "seed": job["seed"]} for m in task.metric_names]).to_csv(snakemake.output.metrics, index=False)
