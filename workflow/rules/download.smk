# Stage 0 (optional, off by default: downloads.enabled): fetch public inputs that are missing
# under data_root. Each file gets <file>.provenance.json beside it (trajzoo.download); a file
# that exists is never an output here, so nothing is downloaded twice. Cabspotting (licence
# form) is never downloaded: see README "Getting the data".


rule download_osm:
    output:
        osm=str(DATA_ROOT / "{osm_file}"),
    log:
        "logs/download/{osm_file}.log",
    wildcard_constraints:
        osm_file=alternatives(OSM_DOWNLOADS) or "(?!)",
    retries: 3
    conda:
        "../../envs/core.yaml"
    params:
        bbox=lambda wc: OSM_DOWNLOADS[wc.osm_file],
    script:
        "../scripts/download_osm.py"


rule download_trajectories:
    output:
        path=str(DATA_ROOT / "{traj_file}"),
    log:
        "logs/download/{traj_file}.log",
    wildcard_constraints:
        traj_file=alternatives(TRAJECTORY_DOWNLOADS) or "(?!)",
    retries: 3
    conda:
        "../../envs/core.yaml"
    params:
        download=lambda wc: TRAJECTORY_DOWNLOADS[wc.traj_file],
    script:
        "../scripts/download_trajectories.py"
