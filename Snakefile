# trajzoo: raw GPS -> OSM road network -> FMM map matching -> road features -> splits
# -> self-supervised pretraining -> downstream fine-tuning -> results/<city>/<model>.csv
# -> summary tables and report figures (snakemake --report results/report.html);
# raw GPS -> point features -> TransferTraj transfer settings -> results/<target>/transfertraj.csv
#
# Table of contents; every stage lives in workflow/rules/<stage>.smk.

configfile: "config.yaml"

report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/roads.smk"
include: "workflow/rules/map_matching.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/road_features.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/results.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/transfertraj.smk"


rule all:
    default_target: True
    input:
        all_result_tables(),
        report_figures(),
        transfertraj_tables(),
