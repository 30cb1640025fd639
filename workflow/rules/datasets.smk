# Source -> verified archives -> extracted dataset directory -> canonical manifest.


rule demo_release:
    """Synthesise a dataset's demo release (its real archive formats) to be fetched like the real one."""
    output:
        "resources/demo/{dataset}/release.json",
    params:
        sets=lambda w: " ".join(f"--set {k}={shlex.quote(json.dumps(v))}" for k, v in dataset_cfg(w.dataset)["demo"].items()),
        seed=config["demo_seed"],
    conda:
        CONDA_ENV
    log:
        "logs/demo_release/{dataset}.log",
    benchmark:
        "benchmarks/demo_release/{dataset}.tsv"
    localrule: True
    shell:
        "{SB} demo {wildcards.dataset} resources/demo/{wildcards.dataset} --seed {params.seed} {params.sets} > {log} 2>&1"


def demo_release_input(w):
    if dataset_cfg(w.dataset)["source"] == "demo":
        return f"resources/demo/{w.dataset}/release.json"
    return []


rule fetch:
    """Download every file of the release with resume, verify size/md5/sha256 (or the TOFU lock)."""
    input:
        demo_release_input,
    output:
        "resources/archives/{dataset}/release.json",
    params:
        source=lambda w: q(source_cfg(w.dataset)),
        demo=lambda w: f"--demo-release resources/demo/{w.dataset}/release.json" if dataset_cfg(w.dataset)["source"] == "demo" else "",
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
        "{SB} fetch {wildcards.dataset} --source {params.source} {params.demo} --archives resources/archives/{wildcards.dataset} --lock {params.lock} > {log} 2>&1"


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
        "{SB} unpack --archives resources/archives/{wildcards.dataset} --root resources/datasets/{wildcards.dataset} --done {output} > {log} 2>&1"


def manifest_input(w):
    cfg = dataset_cfg(w.dataset)
    if cfg["source"] == "local" and cfg.get("root"):
        return []
    return f"resources/datasets/{w.dataset}.done"


rule manifest:
    """Parse the dataset's own metadata into the canonical manifest (prints the split counts to the log)."""
    input:
        manifest_input,
    output:
        manifest="results/{dataset}/manifest.csv",
        classes="results/{dataset}/classes.txt",
    params:
        root=lambda w: dataset_root(w.dataset),
        parse=lambda w: " ".join(f"--set {k}={shlex.quote(json.dumps(v))}" for k, v in dataset_cfg(w.dataset)["parse"].items()),
        missing=lambda w: "--allow-missing-audio" if dataset_cfg(w.dataset)["allow_missing_audio"] else "",
        classes=lambda w: ("--classes " + " ".join(shlex.quote(c) for c in dataset_cfg(w.dataset)["classes"])) if dataset_cfg(w.dataset)["classes"] else "",
    conda:
        CONDA_ENV
    log:
        "logs/manifest/{dataset}.log",
    benchmark:
        "benchmarks/manifest/{dataset}.tsv"
    shell:
        "{SB} manifest {wildcards.dataset} --root {params.root} --out {output.manifest} {params.parse} {params.missing} {params.classes} > {log} 2>&1"
