"""Rule image_features: frozen backbone features of every street-view image, computed once per
image and aligned with the task locations (a location's `source` is its image id)."""
import numpy as np
import pandas as pd
import torch

from trajzoo.registry import get_model
from trajzoo.runlog import setup_rule_logging
from trajzoo.training.loop import resolve_device

log = setup_rule_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
images = pd.read_csv(snakemake.input.images, dtype={"image_id": str})
locations = pd.read_parquet(snakemake.input.locations)
plugin = get_model(snakemake.params.model)
feats = plugin.image_features(list(images["file"]), snakemake.params.hparams, resolve_device(snakemake.params.device))
row = pd.Series(np.arange(len(images)), index=images["image_id"])
idx = row.reindex(locations["source"].astype(str)).to_numpy()
if np.isnan(idx.astype(float)).any():
    raise ValueError(f"{snakemake.input.locations}: a location's source is not an image id of {snakemake.input.images}")
np.save(snakemake.output.features, feats[idx.astype(np.int64)].astype(np.float32))
log.info("%s: %d image features (%d locations), width %d", snakemake.wildcards.city, len(feats), len(idx), feats.shape[1])
