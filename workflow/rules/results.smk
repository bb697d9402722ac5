# Result tables (long format: city, model, variant, setting, train_fraction, sources, task,
# metric, value, n_train, n_test, seed, config_digest):
#   results/<city>/<model>.csv             the model's default setting on that target (only its own jobs)
#   results/<city>/summary.{md,csv}        every model and setting on that target
#   results/<city>/<model>-ablations.csv   the model's variants (experiments with default: false)
#   results/transfer/<model>.csv           cross-city / zero-shot / few-shot rows with the in-city value
#   results/transfer/<model>/              per setting, task and metric a matrix (CSV + Markdown)
#   results/<city>/qc.md                   the data accounting of every stage and task


rule interpolation_baseline:
    input:
        splits="results/{city}/splits.parquet",
        points="results/{city}/points.parquet",
    output:
        metrics="results/{city}/eval/{model}/reference/linear-interpolation/{task}.csv",
    log:
        "logs/{city}/eval/{model}/reference/linear-interpolation/{task}.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    params:
        job=interpolation_job,
    script:
        "../scripts/interpolation_baseline.py"


rule model_table:
    input:
        parts=model_table_inputs,
    output:
        table="results/{city}/{model}.csv",
    log:
        "logs/{city}/model_table/{model}.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    params:
        part_keys=lambda wc: parts_and_keys(
            model_table_experiments(wc.model, wc.city)
        )[1]
        + interpolation_parts(wc.city, wc.model)[1],
        digest=lambda wc: digest_of(model_table_experiments(wc.model, wc.city)),
    script:
        "../scripts/long_table.py"


rule summary:
    input:
        parts=lambda wc: parts_and_keys(city_experiments(wc.city))[0]
        + city_interpolation_parts(wc.city)[0],
        qc=lambda wc: [f"results/{wc.city}/qc/{s}.csv" for s in data_qc_stages(wc.city)],
    output:
        summary=report(
            "results/{city}/summary.md",
            category="Summary",
            caption="../report/summary.rst",
        ),
        table="results/{city}/summary.csv",
    log:
        "logs/{city}/summary.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    params:
        part_keys=lambda wc: parts_and_keys(city_experiments(wc.city))[1]
        + city_interpolation_parts(wc.city)[1],
        digest=lambda wc: digest_of(city_experiments(wc.city)),
        reference_model=REFERENCE_MODEL,
    script:
        "../scripts/summary.py"


rule ablation_table:
    input:
        parts=lambda wc: parts_and_keys(ablation_experiments(wc.model, wc.city))[0],
    output:
        table="results/{city}/{model}-ablations.csv",
    log:
        "logs/{city}/ablation_table/{model}.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    params:
        part_keys=lambda wc: parts_and_keys(ablation_experiments(wc.model, wc.city))[1],
        digest=lambda wc: digest_of(ablation_experiments(wc.model, wc.city)),
    script:
        "../scripts/long_table.py"


rule transfer_table:
    input:
        parts=lambda wc: parts_and_keys(transfer_experiments(wc.model))[0],
    output:
        table="results/transfer/{model}.csv",
        matrices=directory("results/transfer/{model}"),
        heatmap=report(
            "results/transfer/figures/{model}.png",
            category="Transfer matrices",
            caption="../report/transfer.rst",
        ),
    log:
        "logs/transfer/{model}.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    params:
        part_keys=lambda wc: parts_and_keys(transfer_experiments(wc.model))[1],
        digest=lambda wc: digest_of(transfer_experiments(wc.model)),
    script:
        "../scripts/transfer_table.py"


rule qc_report:
    input:
        stages=lambda wc: [
            f"results/{wc.city}/qc/{s}.csv" for s in data_qc_stages(wc.city)
        ],
        tasks=lambda wc: task_qc_files(wc.city),
    output:
        qc=report(
            "results/{city}/qc.md",
            category="Data accounting",
            caption="../report/qc.rst",
        ),
    log:
        "logs/{city}/qc_report.log",
    localrule: True
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/qc_report.py"
