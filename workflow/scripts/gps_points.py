"""Rule gps_points: per-point features of a city's ingested trips for raw-GPS models (TransferTraj):
projected x, y, local time, nearest-road and POI context."""
import pandas as pd

from trajzoo.points import point_features, read_pois
from trajzoo.qc import check_stage_io, parquet_rows
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
trips = pd.read_parquet(snakemake.input.trips)
segments = pd.read_parquet(snakemake.input.segments[0]) if snakemake.input.segments else None
pois = read_pois(list(snakemake.input.pois)) if snakemake.input.pois else None
points, qc = point_features(trips, snakemake.params.crs, snakemake.params.timezone, segments=segments, pois=pois,
                            **snakemake.params.radii)
log.info("%s: %d trips with point features; roads: %s, POIs: %s", snakemake.wildcards.city, len(points),
         segments is not None, 0 if pois is None else len(pois))
points.to_parquet(snakemake.output.points, index=False)
check_stage_io(qc, "points", n_read=parquet_rows(snakemake.input.trips), n_written=len(points))
qc.to_csv(snakemake.output.qc, index=False)
