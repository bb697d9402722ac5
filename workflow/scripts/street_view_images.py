"""Rule street_view_images: the city's street-view images, from a local folder (CSV of file,
lon, lat) or downloaded from Mapillary (token from $MAPILLARY_TOKEN, never logged), with the
provenance (ids, capture time, licence) and the accounting."""
from pathlib import Path

import pandas as pd

from trajzoo.qc import stage_counts
from trajzoo.registry import get_model
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
opts = snakemake.params.options
if opts["source"] == "folder":
    csv = Path(snakemake.input.csv[0])
    table = pd.read_csv(csv)
    missing = [c for c in ("file", "lon", "lat") if c not in table.columns]
    if missing:
        raise ValueError(f"{csv}: street-view CSV lacks column(s) {missing} (needs file, lon, lat)")
    table["file"] = [str((csv.parent / f).resolve()) for f in table["file"]]
    exists = table["file"].map(lambda f: Path(f).is_file())
    reasons = pd.Series(["missing_file"] * int((~exists).sum()), dtype=object)
    n_in = len(table)
    table = table[exists].reset_index(drop=True)
    table["image_id"] = table.get("image_id", pd.Series([Path(f).stem for f in table["file"]])).astype(str)
    provenance = table[["image_id", "file"]].assign(source=str(csv), licence=table.get("licence", "unknown"))
else:
    plugin = get_model(snakemake.params.model)
    table, reasons = plugin.fetch_street_view(snakemake.params.bbox, Path(snakemake.params.folder), opts, log)
    n_in = len(table) + len(reasons)
    provenance = table[["image_id", "captured_at", "licence", "quality_score"]].assign(source="mapillary")
table[["image_id", "file", "lon", "lat"]].to_csv(snakemake.output.images, index=False)
provenance.to_csv(snakemake.output.provenance, index=False)
stage_counts("images", n_in, len(table), reasons).to_csv(snakemake.output.qc, index=False)
log.info("%s: %d street-view images kept", snakemake.wildcards.city, len(table))
