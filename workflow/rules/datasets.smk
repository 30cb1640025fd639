# Source -> verified archives -> extracted dataset directory -> canonical manifest.


rule demo_release:
    """Synthesise a dataset's demo release (its real archive formats) to be fetched like the real one. Temporary:
    the fetched archives are hard links to its files, so it is removed once fetched (and made again only if the
    fetch must run again)."""
    output:
        temp(directory("resources/demo/{dataset}")),
    params:
        sets=plan.demo_sets,
        seed=config["demo_seed"],
    conda:
        CONDA_ENV
    log:
        "logs/demo_release/{dataset}.log",
    benchmark:
        "benchmarks/demo_release/{dataset}.tsv"
    localrule: True
    shell:
        "python -m soundbench demo {wildcards.dataset:q} resources/demo/{wildcards.dataset:q} --seed {params.seed:q} "
        "{params.sets} > {log:q} 2>&1"


rule fetch:
    """Download every file of the release with resume, verify size/md5/sha256 (or the TOFU lock)."""
    input:
        plan.demo_release_input,
    output:
        "resources/archives/{dataset}/release.json",
    params:
        source=plan.fetch_source,
        demo=plan.fetch_demo,
        lock=config["checksum_lock"],
    conda:
        CONDA_ENV
    log:
        "logs/fetch/{dataset}.log",
    benchmark:
        "benchmarks/fetch/{dataset}.tsv"
    retries: 2
    localrule: True
    shell:
        "python -m soundbench fetch {wildcards.dataset:q} --source {params.source} {params.demo} "
        "--archives resources/archives/{wildcards.dataset:q} --lock {params.lock:q} > {log:q} 2>&1"


rule unpack:
    """Extract the release into resources/datasets/{dataset}, all or nothing (hostile paths refused)."""
    input:
        "resources/archives/{dataset}/release.json",
    output:
        "resources/datasets/{dataset}.done",
    conda:
        CONDA_ENV
    log:
        "logs/unpack/{dataset}.log",
    benchmark:
        "benchmarks/unpack/{dataset}.tsv"
    shell:
        "python -m soundbench unpack --archives resources/archives/{wildcards.dataset:q} "
        "--root resources/datasets/{wildcards.dataset:q} --done {output:q} > {log:q} 2>&1"


rule manifest:
    """Parse the dataset's own metadata into the canonical manifest (prints the split counts to the log)."""
    input:
        plan.manifest_input,
    output:
        manifest="results/{dataset}/manifest.csv",
        classes="results/{dataset}/classes.txt",
    params:
        root=plan.manifest_root,
        options=plan.manifest_options,
        type=plan.dataset_type_arg,
    conda:
        CONDA_ENV
    log:
        "logs/manifest/{dataset}.log",
    benchmark:
        "benchmarks/manifest/{dataset}.tsv"
    shell:
        "python -m soundbench manifest {params.type:q} --root {params.root:q} --out {output.manifest:q} "
        "{params.options} > {log:q} 2>&1"
