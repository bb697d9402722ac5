"""Rule download_trajectories: trajectories.download.url (-> one zip member) -> trajectories.path + provenance."""
from trajzoo.download import fetch_url
from trajzoo.runlog import setup_rule_logging

log = setup_rule_logging(snakemake.log[0])
dl = snakemake.params.download
record = fetch_url(dl["url"], snakemake.output.path, member=dl.get("member"))
log.info("%s: %s", snakemake.output.path, record)
