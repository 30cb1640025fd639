# Manifest -> HDF5 shards, one job per shard (a clip's shard is a stable hash of its id).


rule features:
    """Decode, resample and featurise the clips of one shard; undecodable clips go to the skipped list."""
    input:
        manifest="results/{dataset}/manifest.csv",
    output:
        shard="results/{dataset}/features/{feature}/shard-{shard}.h5",
        skipped="results/{dataset}/features/{feature}/shard-{shard}.skipped.csv",
    params:
        spec=lambda w: q(spec_for(w.feature, w.dataset)),
        n_shards=lambda w: n_shards(w.dataset),
        max_failed=config["max_failed_fraction"],
    conda:
        CONDA_ENV
    log:
        "logs/features/{dataset}/{feature}/shard-{shard}.log",
    benchmark:
        "benchmarks/features/{dataset}/{feature}/shard-{shard}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} {SB} features --dataset {wildcards.dataset} --manifest {input.manifest} --name {wildcards.feature} "
        "--spec {params.spec} --shard {wildcards.shard} --n-shards {params.n_shards} --out {output.shard} "
        "--skipped {output.skipped} --max-failed-fraction {params.max_failed} > {log} 2>&1"
