# Config validation and the helpers the rules use. Every rule is a thin shell call into `python -m soundbench`.
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

ROOT = Path(workflow.basedir)
sys.path.insert(0, str(ROOT / "src"))
# jobs run `python -m soundbench` from this checkout, with this interpreter unless a conda env is activated
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]

from soundbench import configuration, datasets as dataset_registry, systems  # noqa: E402

configuration.check_schema(config, ROOT / "workflow/schemas/config.schema.yaml")
validate(config, schema="../schemas/config.schema.yaml")  # fills the defaults
configuration.check_references(config)

SB = "python -m soundbench"
CONDA_ENV = f"../../envs/{config['conda_env']}.yaml"  # used with --sdm conda
EXPERIMENTS = config.get("experiments", {})
DATASETS = sorted({e["dataset"] for e in EXPERIMENTS.values()})


wildcard_constraints:
    dataset="|".join(dataset_registry.NAMES),
    system="[a-z0-9_]+",
    variant="[A-Za-z0-9_.-]+",
    seed=r"\d+",
    shard=r"\d+",
    feature="[A-Za-z0-9_.-]+",


def q(obj):
    """A config value as one quoted shell word (JSON)."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def dataset_cfg(name):
    return config["datasets"][name]


def dataset_root(name):
    cfg = dataset_cfg(name)
    if cfg["source"] == "local" and cfg.get("root"):
        return cfg["root"]
    return f"resources/datasets/{name}"


def source_cfg(name):
    """The part of a dataset's config that decides what is downloaded (a change re-fetches)."""
    cfg = dataset_cfg(name)
    return {k: cfg[k] for k in ("source", "mirror", "root", "archive") if k in cfg}


def spec_for(feature, dataset):
    """The feature spec with clip_seconds resolved for this dataset (its hash is stored in the shards)."""
    spec = dict(config["features"][feature])
    if spec.get("clip_seconds") is None:
        spec["clip_seconds"] = dataset_cfg(dataset).get("clip_seconds") or dataset_registry.get(dataset).clip_seconds
    return spec


def n_shards(dataset):
    return dataset_cfg(dataset)["shards"]


def shard_paths(dataset, feature):
    return [f"results/{dataset}/features/{feature}/shard-{k}.h5" for k in range(n_shards(dataset))]


def experiment(variant):
    return EXPERIMENTS[variant]


def run_dir(variant, seed):
    e = experiment(variant)
    return f"results/{e['dataset']}/{e['system']}/{variant}/seed-{seed}"


def all_runs():
    return [(v, s) for v, e in EXPERIMENTS.items() for s in e["seeds"]]


def experiment_hash(variant):
    """Config hash of an experiment: everything that decides its result (reported in the table)."""
    import hashlib

    e = experiment(variant)
    blob = json.dumps([e["system"], e["dataset"], spec_for(e["feature"], e["dataset"]), e["params"], e["train"],
                       dataset_cfg(e["dataset"]).get("parse", {})], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
