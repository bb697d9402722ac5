"""Rules plot_route_map, plot_gps_distances, plot_embeddings, plot_tte, plot_ablations,
segments_geoparquet: trajzoo.figures, dispatched on the rule name."""
from pathlib import Path

import pandas as pd

from trajzoo import figures
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
city = snakemake.wildcards.city
rule = snakemake.rule
if rule == "plot_route_map":
    n = figures.route_map_html(pd.read_parquet(snakemake.input.segments),
                               pd.read_parquet(snakemake.input.trips, columns=["trip_id", "lon", "lat"]),
                               pd.read_parquet(snakemake.input.matched, columns=["trip_id", "roads"]),
                               snakemake.params.crs, Path(snakemake.output.figure), city)
    log.info("%d trips on the map", n)
elif rule == "plot_gps_distances":
    trips = pd.read_parquet(snakemake.input.trips, columns=["trip_id", "lon", "lat"])
    dist = figures.gps_road_distances(pd.read_parquet(snakemake.input.segments), trips, snakemake.params.crs)
    figures.plot_gps_road_distances(dist, Path(snakemake.output.figure), city, len(trips), snakemake.params.radius)
elif rule == "plot_embeddings":
    trips = pd.read_parquet(snakemake.input.trips, columns=["trip_id", "call_type", "start_time"])
    trips["trip_id"] = trips["trip_id"].astype(str)
    if trips["call_type"].notna().any():
        labels, name = trips.set_index("trip_id")["call_type"], "call type"
    else:  # no categorical label in the source: local departure time of day
        hour = pd.to_datetime(trips["start_time"], unit="s", utc=True).dt.tz_convert(snakemake.params.timezone).dt.hour
        labels = pd.Series(pd.cut(hour, [-1, 5, 9, 15, 19, 23], labels=["0-5 h", "6-9 h", "10-15 h", "16-19 h",
                                                                         "20-23 h"]).astype(str).to_numpy(),
                           index=trips["trip_id"])
        name = "departure (local time)"
    embeddings = {m: pd.read_parquet(p) for m, p in zip(snakemake.params.models, snakemake.input.embeddings)}
    figures.plot_embedding_projection(embeddings, labels, name, Path(snakemake.output.figure), city)
elif rule == "plot_tte":
    preds = {label: pd.read_parquet(p) for label, p in zip(snakemake.params.labels, snakemake.input.predictions)}
    figures.plot_tte_predictions(preds, Path(snakemake.output.figure), city)
elif rule == "plot_ablations":
    figures.plot_ablations(pd.read_csv(snakemake.input.table), Path(snakemake.output.figure), city,
                           snakemake.wildcards.model)
elif rule == "segments_geoparquet":
    figures.write_segments_geoparquet(pd.read_parquet(snakemake.input.segments), snakemake.params.crs,
                                      Path(snakemake.output.geoparquet))
else:
    raise ValueError(f"figures.py does not know rule {rule}")
log.info("wrote %s", list(snakemake.output))
