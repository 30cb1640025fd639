# Shards -> one trained model per (experiment, seed) -> its test metrics.
# Resumable state lives under checkpoints/ (not a declared output, so Snakemake never deletes it).


def run_shards(w):
    e = experiment(w.variant)
    return shard_paths(e["dataset"], e["feature"])


rule train:
    """Train one seed of an experiment (systems registry: soundbench/systems.py)."""
    input:
        manifest="results/{dataset}/manifest.csv",
        shards=run_shards,
    output:
        model="results/{dataset}/{system}/{variant}/seed-{seed}/model.pt",
        history="results/{dataset}/{system}/{variant}/seed-{seed}/history.csv",
        info="results/{dataset}/{system}/{variant}/seed-{seed}/train.json",
    params:
        spec=lambda w: q(spec_for(experiment(w.variant)["feature"], w.dataset)),
        params=lambda w: q(experiment(w.variant)["params"]),
        train=lambda w: q(experiment(w.variant)["train"]),
        task=lambda w: dataset_registry.get(w.dataset).task,
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
        gpu=lambda w: 0 if systems.get(experiment(w.variant)["system"]).kind == "sklearn" else 1,
    shell:
        "OMP_NUM_THREADS={threads} {SB} train --manifest {input.manifest} --shards {input.shards} "
        "--system {wildcards.system} --task {params.task} --spec {params.spec} --params {params.params} "
        "--train {params.train} --seed {wildcards.seed} --out-dir $(dirname {output.model}) "
        "--checkpoint {params.checkpoint} --device {params.device} > {log} 2>&1"


rule evaluate:
    """Clip-level test predictions and metrics of one trained run."""
    input:
        manifest="results/{dataset}/manifest.csv",
        shards=run_shards,
        model="results/{dataset}/{system}/{variant}/seed-{seed}/model.pt",
    output:
        metrics="results/{dataset}/{system}/{variant}/seed-{seed}/metrics.json",
        predictions="results/{dataset}/{system}/{variant}/seed-{seed}/predictions.csv",
        per_class="results/{dataset}/{system}/{variant}/seed-{seed}/per_class.csv",
    params:
        threshold=lambda w: experiment(w.variant)["threshold"],
        device=config["device"],
    conda:
        CONDA_ENV
    log:
        "logs/evaluate/{dataset}/{system}/{variant}/seed-{seed}.log",
    benchmark:
        "benchmarks/evaluate/{dataset}/{system}/{variant}/seed-{seed}.tsv"
    resources:
        gpu=lambda w: 0 if systems.get(experiment(w.variant)["system"]).kind == "sklearn" else 1,
    shell:
        "{SB} evaluate --manifest {input.manifest} --shards {input.shards} --model {input.model} "
        "--out-dir $(dirname {output.metrics}) --threshold {params.threshold} --device {params.device} > {log} 2>&1"
