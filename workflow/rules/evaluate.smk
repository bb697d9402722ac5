# Stage 7: downstream fine-tuning and evaluation on the target city, one job per task,
# and trajectory embeddings from the pretrained encoder.


rule finetune_task:
    input:
        unpack(lambda wc: city_outputs(wc.city)),
        encoder="results/{city}/models/{run}/seed{seed}/encoder.pt",
    output:
        metrics="results/{city}/eval/{run}/seed{seed}/{task}.csv",
        history="results/{city}/eval/{run}/seed{seed}/{task}_history.csv",
        qc="results/{city}/qc/task_{task}_{run}_seed{seed}.csv",
    params:
        settings=lambda wc: run_settings(wc.run, wc.seed),
        finetune=lambda wc: config["models"][parse_run(wc.run)[0]]["finetune"],
        task_options=lambda wc: config["tasks"].get(wc.task, {}),
        timezone=lambda wc: config["cities"][wc.city]["timezone"],
        checkpoint_dir=lambda wc: f"results/{wc.city}/eval/{wc.run}/seed{wc.seed}/checkpoints",
    threads: 1
    resources:
        gpu=gpu_request,
    log:
        "logs/{city}/finetune/{run}/seed{seed}/{task}.log",
    benchmark:
        "benchmarks/{city}/finetune/{run}/seed{seed}/{task}.tsv"
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/finetune_task.py"


rule embed_trajectories:
    input:
        unpack(lambda wc: city_outputs(wc.city)),
        encoder=lambda wc: f"results/{wc.city}/models/{wc.run}/seed{SEEDS[0]}/encoder.pt",
    output:
        embeddings="results/{city}/embeddings/{run}.parquet",
    params:
        settings=lambda wc: run_settings(wc.run),
        timezone=lambda wc: config["cities"][wc.city]["timezone"],
    threads: 1
    resources:
        gpu=gpu_request,
    log:
        "logs/{city}/embed/{run}.log",
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/embed_trajectories.py"
