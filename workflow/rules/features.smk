# Manifest -> HDF5 shards, one job per shard (a clip's shard is a stable hash of its id). The shards of every
# spec an experiment uses (feature or inputs) are the inputs of its train and evaluate jobs.


rule features:
    """Decode, resample and featurise the clips of one shard; undecodable clips go to the skipped list."""
    input:
        manifest="results/{dataset}/manifest.csv",
    output:
        shard="results/{dataset}/features/{feature}/shard-{shard}.h5",
        skipped="results/{dataset}/features/{feature}/shard-{shard}.skipped.csv",
    params:
        spec=plan.feature_spec,
        n_shards=plan.feature_shards,
        max_failed=config["max_failed_fraction"],
    conda:
        CONDA_ENV
    log:
        "logs/features/{dataset}/{feature}/shard-{shard}.log",
    benchmark:
        "benchmarks/features/{dataset}/{feature}/shard-{shard}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} python -m soundbench features --dataset {wildcards.dataset} "
        "--manifest {input.manifest} --name {wildcards.feature} --spec {params.spec} --shard {wildcards.shard} "
        "--n-shards {params.n_shards} --out {output.shard} --skipped {output.skipped} "
        "--max-failed-fraction {params.max_failed} > {log} 2>&1"
