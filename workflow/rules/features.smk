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
        type=plan.dataset_type_arg,
        max_failed=config["max_failed_fraction"],
    conda:
        CONDA_ENV
    log:
        "logs/features/{dataset}/{feature}/shard-{shard}.log",
    benchmark:
        "benchmarks/features/{dataset}/{feature}/shard-{shard}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} python -m soundbench features --dataset {params.type:q} "
        "--manifest {input.manifest:q} --name {wildcards.feature:q} --spec {params.spec} --shard {wildcards.shard:q} "
        "--n-shards {params.n_shards:q} --out {output.shard:q} --skipped {output.skipped:q} "
        "--max-failed-fraction {params.max_failed:q} > {log:q} 2>&1"
