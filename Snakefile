# trajzoo: raw GPS -> OSM road network -> FMM map matching -> road features / GPS point features /
# grid cells -> one split per city -> self-supervised pretraining of every model (one rule) ->
# downstream evaluation per experiment setting (one rule) -> results/<city>/<model>.csv, summaries,
# transfer matrices, and the report (snakemake --report results/report.html).
#
# Table of contents; every stage lives in workflow/rules/<stage>.smk. Threads and resources of
# every rule: profiles/default (loaded automatically), profiles/slurm for clusters.


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/roads.smk"
include: "workflow/rules/map_matching.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/road_features.smk"
include: "workflow/rules/points.smk"
include: "workflow/rules/grid.smk"
include: "workflow/rules/locations.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/results.smk"
include: "workflow/rules/report.smk"


onerror:
    print_failed_job_logs(log)


rule all:
    default_target: True
    input:
        all_result_tables(),
        report_figures(),
        model_bundles(),
        more_figures(),
