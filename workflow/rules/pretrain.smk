# Stage 6: self-supervised pretraining of a registered model (entry point trajzoo.models).


def pretrain_inputs(wc):
    settings = run_settings(wc.run)
    inputs = {f"target_{k}": v for k, v in city_outputs(wc.city).items()}
    for i, src in enumerate(settings["sources"]):
        inputs.update({f"source{i}_{k}": v for k, v in city_outputs(src).items()})
    return inputs


rule pretrain:
    input:
        unpack(pretrain_inputs),
    output:
        encoder="results/{city}/models/{run}/seed{seed}/encoder.pt",
        history="results/{city}/models/{run}/seed{seed}/pretrain_history.csv",
    params:
        settings=lambda wc: run_settings(wc.run, wc.seed),
        cities=lambda wc: {c: config["cities"][c]["timezone"] for c in [wc.city] + run_settings(wc.run)["sources"]},
        checkpoint_dir=lambda wc: f"results/{wc.city}/models/{wc.run}/seed{wc.seed}/checkpoints",
    threads: 2
    resources:
        gpu=gpu_request,
    log:
        "logs/{city}/pretrain/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/{city}/pretrain/{run}/seed{seed}.tsv"
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/pretrain.py"
