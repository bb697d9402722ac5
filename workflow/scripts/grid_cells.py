"""Rule grid_cells: the city's square grid (projected metres), POI-category semantics per cell
and each trip's visited-cell sequence (SMARTraj2's grid view), with their accounting."""
import pandas as pd

from trajzoo.grid import grid_spec, poi_cells_from_files, trip_cell_sequences
from trajzoo.qc import check_stage_io, parquet_rows
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
spec = grid_spec(snakemake.params.bbox, snakemake.params.crs, snakemake.params.cell_m)
cells, poi_qc = poi_cells_from_files(spec, list(snakemake.input.pois), snakemake.params.crs)
trips, trip_qc = trip_cell_sequences(spec, pd.read_parquet(snakemake.input.trips), snakemake.params.crs)
log.info("%s: grid %d x %d cells of %g m; %d cells with POIs; %d trips", snakemake.wildcards.city, spec.n_x,
         spec.n_y, spec.cell_m, len(cells), len(trips))
check_stage_io(trip_qc, "grid", n_read=parquet_rows(snakemake.input.trips), n_written=len(trips))
cells.to_parquet(snakemake.output.cells, index=False)
trips.to_parquet(snakemake.output.trips, index=False)
pd.concat([trip_qc, poi_qc], ignore_index=True).to_csv(snakemake.output.qc, index=False)
