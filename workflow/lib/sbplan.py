"""What the rules ask of the configuration: the paths of a run, each job's inputs and its command's arguments.

workflow/rules/common.smk validates the config and makes one `Plan` of it; the rule files hold only rules, whose
input functions and params are the methods below (each takes the job's wildcards). Nothing here runs a job.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex

from soundbench import configuration, systems
from soundbench import datasets as dataset_registry


def job_environment(environ, src: str, executable: str) -> dict[str, str]:
    """PATH and PYTHONPATH for the jobs: `python -m soundbench` runs this checkout's package (src first on
    PYTHONPATH) with the interpreter that runs Snakemake (its directory first on PATH) unless a conda env that
    a job activates comes before it. Idempotent: a job that Snakemake spawns (cluster) gets the same values."""

    def first(entry: str, value: str | None) -> str:
        parts = [p for p in (value or "").split(os.pathsep) if p]
        return os.pathsep.join([entry] + (parts[1:] if parts and parts[0] == entry else parts))

    return {"PATH": first(os.path.dirname(executable), environ.get("PATH")),
            "PYTHONPATH": first(str(src), environ.get("PYTHONPATH"))}


def q(obj) -> str:
    """A config value as one quoted shell word (JSON)."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def set_words(options: dict) -> str:
    """--set KEY=VALUE words of an options mapping, each one quoted shell word (keys come from the config too)."""
    return " ".join("--set " + shlex.quote(f"{k}={json.dumps(v, sort_keys=True)}") for k, v in options.items())


class Plan:
    def __init__(self, config: dict):
        self.config = config
        self.experiments = config.get("experiments", {})
        self._hashes: dict[str, str] = {}
        self._dataset_tasks: dict[str, str] = {}

    # --- datasets and features ---

    def dataset_cfg(self, name: str) -> dict:
        return self.config["datasets"][name]

    def dataset_type(self, name: str) -> str:
        """The registry name of a configured dataset (its `type:`, e.g. audiofolder, else its own name)."""
        return dataset_registry.type_of(name, self.dataset_cfg(name))

    def dataset_task(self, name: str) -> str:
        """The configured dataset's task (own data: from its metadata, read once per Snakemake run)."""
        if name not in self._dataset_tasks:
            self._dataset_tasks[name] = dataset_registry.task_of(name, self.dataset_cfg(name))
        return self._dataset_tasks[name]

    def dataset_root(self, name: str) -> str:
        cfg = self.dataset_cfg(name)
        if cfg["source"] == "local" and cfg.get("root"):
            return cfg["root"]
        return f"resources/datasets/{name}"

    def source_cfg(self, name: str) -> dict:
        """The part of a dataset's config that decides what is downloaded (a change re-fetches)."""
        cfg = self.dataset_cfg(name)
        return {k: cfg[k] for k in ("source", "mirror", "root", "archive", "extract", "keep_archives") if k in cfg}

    def spec_for(self, feature: str, dataset: str) -> dict:
        """The feature spec with clip_seconds resolved for this dataset (its hash is stored in the shards)."""
        spec = dict(self.config["features"][feature])
        if spec.get("clip_seconds") is None:
            spec["clip_seconds"] = (self.dataset_cfg(dataset).get("clip_seconds")
                                    or dataset_registry.get(self.dataset_type(dataset)).clip_seconds)
        return spec

    def n_shards(self, dataset: str) -> int:
        return self.dataset_cfg(dataset)["shards"]

    def shard_paths(self, dataset: str, feature: str) -> list[str]:
        return [f"results/{dataset}/features/{feature}/shard-{k}.h5" for k in range(self.n_shards(dataset))]

    # --- experiments and their runs ---

    def experiment(self, variant: str) -> dict:
        return self.experiments[variant]

    def run_dir(self, variant: str, seed) -> str:
        e = self.experiment(variant)
        return f"results/{e['dataset']}/{e['system']}/{variant}/seed-{seed}"

    def all_runs(self) -> list[tuple[str, int]]:
        return [(v, s) for v, e in self.experiments.items() for s in e["seeds"]]

    def inputs(self, variant: str) -> dict[str, dict]:
        """{input name: {"spec": resolved spec, "shards": [paths]}}: the --inputs of train and evaluate."""
        e = self.experiment(variant)
        return {name: {"spec": self.spec_for(feature, e["dataset"]), "shards": self.shard_paths(e["dataset"], feature)}
                for name, feature in configuration.input_specs(e).items()}

    def upstream(self, variant: str, seed, key: str) -> str | None:
        """The run directory that a run takes its `key` (init_from, teacher, predictions_from) from, or None."""
        dep = configuration.dependency(self.experiment(variant), key, int(seed))
        return None if dep is None else self.run_dir(*dep)

    def experiment_hash(self, variant: str) -> str:
        """Config hash of an experiment: everything that decides its result (reported in the table), including the
        hashes of the experiments it depends on (the config checks exclude cycles)."""
        if variant not in self._hashes:
            e = self.experiment(variant)
            upstream = {}
            for key in configuration.DEPENDENCIES:
                ref = configuration.dependency_ref(e, key)
                if ref is not None:
                    upstream[key] = {**ref, "hash": self.experiment_hash(ref["experiment"])}
            specs = {name: self.spec_for(feature, e["dataset"])
                     for name, feature in configuration.input_specs(e).items()}
            blob = json.dumps([e["system"], e["dataset"], specs, e["params"], e["train"],
                               self.dataset_cfg(e["dataset"]).get("parse", {}), e.get("task"),
                               configuration.threshold(e), e["eval_split"], upstream], sort_keys=True)
            self._hashes[variant] = hashlib.sha256(blob.encode()).hexdigest()[:12]
        return self._hashes[variant]

    def run_records(self) -> list[dict]:
        out = []
        for v, s in self.all_runs():
            e = self.experiment(v)
            paper = {m: val for (d, m), val in systems.get(e["system"]).paper.items() if d == e["dataset"]}
            out.append({"dataset": e["dataset"], "system": e["system"], "variant": v, "seed": s,
                        "config_hash": self.experiment_hash(v), "paper": {**paper, **e["paper"]},
                        "run_dir": self.run_dir(v, s), "task": self.task(v),
                        "manifest": f"results/{e['dataset']}/manifest.csv"})
        return out

    def task(self, variant: str) -> str:
        from soundbench import tasks

        e = self.experiment(variant)
        return tasks.resolve_name(e.get("task"), e["system"], e["dataset"], self.dataset_task(e["dataset"]))

    def single_label_datasets(self) -> list[str]:
        """Datasets with single-label experiments (each gets a confusion-matrix and a per-class accuracy figure)."""
        from soundbench import tasks

        return list(dict.fromkeys(e["dataset"] for v, e in self.experiments.items()
                                  if tasks.get(self.task(v)).single_label))

    # --- rule datasets.smk ---

    def demo_sets(self, wildcards) -> str:
        return set_words(self.dataset_cfg(wildcards.dataset)["demo"])

    def demo_release_input(self, wildcards):
        if self.dataset_cfg(wildcards.dataset)["source"] == "demo":
            return f"resources/demo/{wildcards.dataset}"
        return []

    def fetch_source(self, wildcards) -> str:
        return q(self.source_cfg(wildcards.dataset))

    def fetch_demo(self, wildcards) -> str:
        if self.dataset_cfg(wildcards.dataset)["source"] == "demo":
            return "--demo-release " + shlex.quote(f"resources/demo/{wildcards.dataset}/release.json")
        return ""

    def manifest_input(self, wildcards):
        cfg = self.dataset_cfg(wildcards.dataset)
        if cfg["source"] == "local" and cfg.get("root"):
            return []
        return f"resources/datasets/{wildcards.dataset}.done"

    def manifest_root(self, wildcards) -> str:
        return self.dataset_root(wildcards.dataset)

    def dataset_type_arg(self, wildcards) -> str:
        return self.dataset_type(wildcards.dataset)

    def manifest_options(self, wildcards) -> str:
        """--set for every parse option, --allow-missing-audio, --classes."""
        cfg = self.dataset_cfg(wildcards.dataset)
        words = [set_words(cfg["parse"])] if cfg["parse"] else []
        if cfg["allow_missing_audio"]:
            words.append("--allow-missing-audio")
        if cfg["classes"]:
            words.append("--classes " + " ".join(shlex.quote(c) for c in cfg["classes"]))
        return " ".join(words)

    # --- rule features.smk ---

    def feature_spec(self, wildcards) -> str:
        return q(self.spec_for(wildcards.feature, wildcards.dataset))

    def feature_shards(self, wildcards) -> int:
        return self.n_shards(wildcards.dataset)

    # --- rules train.smk ---

    def shards(self, variant: str) -> list[str]:
        """The shards of every input of an experiment."""
        return sorted({p for i in self.inputs(variant).values() for p in i["shards"]})

    def train_input(self, wildcards) -> dict:
        """The shards and the model.pt of the init_from / teacher runs (the rule adds the manifest)."""
        files = {"shards": self.shards(wildcards.variant)}
        for key in ("init_from", "teacher"):
            run = self.upstream(wildcards.variant, wildcards.seed, key)
            if run is not None:
                files[key] = f"{run}/model.pt"
        return files

    def evaluate_input(self, wildcards) -> dict:
        """The shards and the predictions_from run's predictions.h5 (the rule adds the manifest and the model)."""
        files = {"shards": self.shards(wildcards.variant)}
        run = self.upstream(wildcards.variant, wildcards.seed, "predictions_from")
        if run is not None:
            files["predictions_from"] = f"{run}/predictions.h5"
        return files

    def inputs_arg(self, wildcards) -> str:
        return q(self.inputs(wildcards.variant))

    def params_arg(self, wildcards) -> str:
        return q(self.experiment(wildcards.variant)["params"])

    def train_arg(self, wildcards) -> str:
        return q(self.experiment(wildcards.variant)["train"])

    def task_arg(self, wildcards) -> str:
        return self.task(wildcards.variant)

    def train_dependencies(self, wildcards) -> str:
        """--init-from / --teacher with the upstream runs' model.pt (the same files train_input lists)."""
        files = self.train_input(wildcards)
        return " ".join(f"--{key.replace('_', '-')} {shlex.quote(files[key])}" for key in ("init_from", "teacher")
                        if key in files)

    def threshold_arg(self, wildcards) -> str:
        return q(configuration.threshold(self.experiment(wildcards.variant)))

    def eval_split(self, wildcards) -> str:
        return self.experiment(wildcards.variant)["eval_split"]

    def evaluate_dependencies(self, wildcards) -> str:
        files = self.evaluate_input(wildcards)
        return f"--predictions-from {shlex.quote(files['predictions_from'])}" if "predictions_from" in files else ""

    def gpus(self, wildcards) -> int:
        """One GPU for a neural system, none for the sklearn baseline."""
        return 0 if systems.get(self.experiment(wildcards.variant)["system"]).kind == "sklearn" else 1

    # --- rule report.smk ---

    def run_files(self, name: str) -> list[str]:
        return [f"{self.run_dir(v, s)}/{name}" for v, s in self.all_runs()]

    def class_figures(self, kind: str) -> list[str]:
        """results/figures/<kind>_<dataset>.png of every dataset with single-label experiments."""
        return [f"results/figures/{kind}_{d}.png" for d in self.single_label_datasets()]

    def sed_figures(self) -> list[str]:
        """The sound event detection figures: per-class event F of every sed variant, and each sed variant's
        event timelines of a few test clips (none without sed experiments)."""
        variants = [v for v in self.experiments if self.task(v) == "sed"]
        if not variants:
            return []
        return ["results/figures/sed_per_class_event_f.png"] + [f"results/figures/sed_events_{v}.png"
                                                                 for v in variants]

    def single_label_manifests(self) -> list[str]:
        return [f"results/{d}/manifest.csv" for d in self.single_label_datasets()]

    def runs_arg(self, wildcards) -> str:
        return q(self.run_records())
