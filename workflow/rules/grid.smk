# Grid cells with POI semantics, for models that read the grid (input "grid", e.g. SMARTraj2): a
# square grid in the city's projected CRS (grid.cell_m metres), each cell's POI-category counts
# normalised per cell, and each trip's sequence of visited cells. Built only when a requested
# model needs it; a city without POIs gets cells without semantics (never a crash).


rule grid_cells:
    input:
        trips="results/{city}/trips.parquet",
        pois=lambda wc: [DATA_ROOT / p for p in config["cities"][wc.city]["pois"]],
    output:
        cells="results/{city}/grid/cells.parquet",
        trips="results/{city}/grid/trips.parquet",
        qc="results/{city}/qc/grid.csv",
    log:
        "logs/{city}/grid_cells.log",
    conda:
        "../../envs/core.yaml"
    params:
        bbox=lambda wc: config["cities"][wc.city]["bbox"],
        crs=lambda wc: config["cities"][wc.city]["crs"],
        cell_m=config["grid"]["cell_m"],
    script:
        "../scripts/grid_cells.py"
