"""Rule task_locations: task locations on the road network (points every spacing_m along every
road segment, or street-view image locations snapped to their segment), the trips passing each
within delta_m, the POI category counts within the AOI radius, and the accounting."""
import json

import numpy as np
import pandas as pd
from pyproj import Transformer

from trajzoo.data.points import POI_CATEGORIES, point_rows
from trajzoo.locations import build_locations, poi_distribution
from trajzoo.points import read_pois
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
p = snakemake.params
opts = p.options
segments = pd.read_parquet(snakemake.input.segments)
points = pd.read_parquet(snakemake.input.points).merge(pd.read_parquet(snakemake.input.splits), on="trip_id")
points = points[points["split"].isin(["train", "val", "test"])]
rows = point_rows(points)
to_xy = Transformer.from_crs("EPSG:4326", p.crs, always_xy=True)
images = None
if snakemake.input.get("images"):
    images = pd.read_csv(snakemake.input.images[0])
    images["x"], images["y"] = to_xy.transform(images["lon"].to_numpy(float), images["lat"].to_numpy(float))
locations, assoc, qc = build_locations(segments, rows, list(points["split"]), opts["spacing_m"], opts["delta_m"], p.crs,
                                       opts["split"], opts.get("max_locations"), p.seed, images)
pois = read_pois(list(snakemake.input.pois)) if snakemake.input.pois else None
if pois is not None and len(pois):
    px, py = to_xy.transform(pois["lon"].to_numpy(), pois["lat"].to_numpy())
    cat = pd.Categorical(pois["category"], categories=list(POI_CATEGORIES)).codes
    counts = poi_distribution(locations["x"].to_numpy(), locations["y"].to_numpy(), px, py, cat, len(POI_CATEGORIES),
                              opts["aoi_radius_m"])
    locations["has_poi_data"] = True
else:
    counts = np.zeros((len(locations), len(POI_CATEGORIES)), dtype=np.int64)
    locations["has_poi_data"] = False
locations["poi_counts"] = list(counts)
bbox = list(p.bbox) if p.bbox else [  # bbox null: the road network's extent
    float(segments[["lon_start", "lon_end"]].min().min()), float(segments[["lat_start", "lat_end"]].min().min()),
    float(segments[["lon_start", "lon_end"]].max().max()), float(segments[["lat_start", "lat_end"]].max().max())]
bx, by = to_xy.transform([bbox[0], bbox[2], bbox[0], bbox[2]], [bbox[1], bbox[1], bbox[3], bbox[3]])
frame = {"crs": p.crs, "bbox": bbox, "bbox_xy": [min(bx), min(by), max(bx), max(by)],
         "delta_m": opts["delta_m"], "spacing_m": opts["spacing_m"], "source": "images" if images is not None else "road"}
log.info("%s: %d locations, %d location-trip pairs (%s)", snakemake.wildcards.city, len(locations), len(assoc),
         assoc["split"].value_counts().to_dict())
locations.to_parquet(snakemake.output.locations, index=False)
assoc.to_parquet(snakemake.output.trips, index=False)
with open(snakemake.output.frame, "w") as f:
    json.dump(frame, f, indent=1)
qc.to_csv(snakemake.output.qc, index=False)
