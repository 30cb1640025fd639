# Shards -> one trained model per (experiment, seed) -> its metrics and predictions.
# Resumable state lives under checkpoints/ (not a declared output, so Snakemake never deletes it).
# An experiment's init_from / teacher runs' model.pt are inputs of its train jobs, its predictions_from run's
# predictions.h5 an input of its evaluate jobs: a change upstream reruns what depends on it.


rule train:
    """Train one seed of an experiment (systems registry: soundbench/systems.py)."""
    input:
        unpack(plan.train_input),
        manifest="results/{dataset}/manifest.csv",
    output:
        model="results/{dataset}/{system}/{variant}/seed-{seed}/model.pt",
        history="results/{dataset}/{system}/{variant}/seed-{seed}/history.csv",
        info="results/{dataset}/{system}/{variant}/seed-{seed}/train.json",
    params:
        inputs=plan.inputs_arg,
        task=plan.task_arg,
        params=plan.params_arg,
        train=plan.train_arg,
        upstream=plan.train_dependencies,
        device=config["device"],
        checkpoint="checkpoints/{dataset}/{system}/{variant}/seed-{seed}/last.pt",
    conda:
        CONDA_ENV
    log:
        "logs/train/{dataset}/{system}/{variant}/seed-{seed}.log",
    benchmark:
        "benchmarks/train/{dataset}/{system}/{variant}/seed-{seed}.tsv"
    threads: 1  # small models scale poorly with threads: run jobs side by side (--set-threads train=N)
    resources:
        # one GPU for a neural system, none for the sklearn baseline (memory, runtime, CPUs: profiles/slurm)
        gpu=plan.gpus,
    shell:
        "OMP_NUM_THREADS={threads} python -m soundbench train --dataset {wildcards.dataset:q} "
        "--manifest {input.manifest:q} --inputs {params.inputs} --system {wildcards.system:q} --task {params.task:q} "
        "--params {params.params} --train {params.train} --seed {wildcards.seed:q} "
        "--out-dir \"$(dirname {output.model:q})\" --checkpoint {params.checkpoint:q} --device {params.device:q} "
        "{params.upstream} > {log:q} 2>&1"


rule evaluate:
    """Predictions and metrics of one trained run on the experiment's eval_split."""
    input:
        unpack(plan.evaluate_input),
        manifest="results/{dataset}/manifest.csv",
        model="results/{dataset}/{system}/{variant}/seed-{seed}/model.pt",
    output:
        metrics="results/{dataset}/{system}/{variant}/seed-{seed}/metrics.json",
        predictions="results/{dataset}/{system}/{variant}/seed-{seed}/predictions.csv",
        per_class="results/{dataset}/{system}/{variant}/seed-{seed}/per_class.csv",
        scores="results/{dataset}/{system}/{variant}/seed-{seed}/predictions.h5",
        # the detected events in the DCASE format (sed; header only for other tasks)
        events="results/{dataset}/{system}/{variant}/seed-{seed}/events.tsv",
    params:
        inputs=plan.inputs_arg,
        threshold=plan.threshold_arg,
        split=plan.eval_split,
        upstream=plan.evaluate_dependencies,
        device=config["device"],
    conda:
        CONDA_ENV
    log:
        "logs/evaluate/{dataset}/{system}/{variant}/seed-{seed}.log",
    benchmark:
        "benchmarks/evaluate/{dataset}/{system}/{variant}/seed-{seed}.tsv"
    resources:
        gpu=plan.gpus,
    shell:
        "python -m soundbench evaluate --manifest {input.manifest:q} --inputs {params.inputs} --model {input.model:q} "
        "--out-dir \"$(dirname {output.metrics:q})\" --threshold {params.threshold} --split {params.split:q} "
        "--device {params.device:q} {params.upstream} > {log:q} 2>&1"
