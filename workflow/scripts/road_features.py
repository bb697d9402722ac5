"""Rule road_features: structural vector s (MetaTRL eq. 5), attributes u, transitions (eq. 10)."""
import pandas as pd

from trajzoo.roads.features import attribute_features, structural_features, transition_probabilities
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
segments = pd.read_parquet(snakemake.input.segments)
adjacency = pd.read_parquet(snakemake.input.adjacency)
matched = pd.read_parquet(snakemake.input.matched, columns=["trip_id", "roads"])
splits = pd.read_parquet(snakemake.input.splits)
train_ids = set(splits.loc[splits["split"] == "train", "trip_id"])
train = matched[matched["trip_id"].isin(train_ids)]
transitions, n_off = transition_probabilities(train["roads"], adjacency)
if n_off:
    log.warning("%d observed transitions are not in the segment adjacency", n_off)
log.info("transitions from %d TRAIN trips: %d of %d adjacent pairs observed", len(train),
         int((transitions["count"] > 0).sum()), len(transitions))
structural_features(segments, adjacency).to_parquet(snakemake.output.structural, index=False)
attribute_features(segments, adjacency).to_parquet(snakemake.output.attributes, index=False)
transitions.to_parquet(snakemake.output.transitions, index=False)
