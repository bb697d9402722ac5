"""Rule transfertraj_table: results/<target>/transfertraj.csv, one row per (setting, variant,
task, metric), long format like the road models' tables plus the transfer columns."""
import pandas as pd

from trajzoo.runlog import config_digest, setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
sources = "+".join(snakemake.params.sources)
frames = []
for key, path in zip(snakemake.params.eval_keys, snakemake.input.parts):
    part = pd.read_csv(path)
    pretrained_on = snakemake.wildcards.city if key["pretrain"] == "in-city" else sources
    frames.append(pd.DataFrame({
        "city": snakemake.wildcards.city,
        "model": "transfertraj",
        "setting": key["setting"].rstrip("0123456789.").rstrip("-") if key["setting"].startswith("few-shot")
        else key["setting"],
        "train_fraction": key["train_fraction"],
        "variant": key["variant"],
        "pretrain_cities": pretrained_on,
        "task": part["task"],
        "metric": part["metric"],
        "value": part["value"],
        "n_train": part["n_train"],
        "n_test": part["n_test"],
        "seed": part["seed"],
    }))
table = pd.concat(frames, ignore_index=True)
table["config_digest"] = config_digest(snakemake.params.digest)
log.info("\n%s", table.to_string())
table.to_csv(snakemake.output.table, index=False, float_format="%.6g")
