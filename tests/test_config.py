"""Config validation happens before any job runs, and its errors name the key at fault."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from soundbench import configuration

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


@pytest.fixture
def demo_config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_demo_config_is_valid(demo_config):
    configuration.check_schema(demo_config, SCHEMA)
    configuration.check_references(demo_config)


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["experiments"]["mtt_baseline"].update(epochs=3), "experiments.mtt_baseline"),
    (lambda c: c["experiments"]["mtt_smallcnn"].update(seeds="0"), "experiments.mtt_smallcnn.seeds"),
    (lambda c: c["datasets"]["mtt"].update(source="ftp"), "datasets.mtt.source"),
    (lambda c: c["datasets"]["mtt"].update(shards=0), "datasets.mtt.shards"),
    (lambda c: c.update(datasets={**c["datasets"], "esc50": {}}), "datasets.esc50: not a published dataset"),
    (lambda c: c["features"]["logmel16k"].pop("kind"), "features.logmel16k"),
])
def test_schema_errors_name_the_key(demo_config, edit, key):
    cfg = copy.deepcopy(demo_config)
    edit(cfg)
    with pytest.raises(configuration.ConfigError, match=f"config key {key}"):
        configuration.check_schema(cfg, SCHEMA)


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["experiments"]["mtt_baseline"].update(system="resnet"), "experiments.mtt_baseline.system"),
    (lambda c: c["experiments"]["mtt_baseline"].update(feature="mfcc"), "experiments.mtt_baseline.feature"),
    (lambda c: c["features"]["logmel16k"].update(n_mel=40), "features.logmel16k"),
])
def test_reference_errors_name_the_key(demo_config, edit, key):
    cfg = copy.deepcopy(demo_config)
    edit(cfg)
    with pytest.raises(configuration.ConfigError, match=f"config key {key}"):
        configuration.check_references(cfg)


def test_snakemake_refuses_a_bad_config_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments: {mtt_baseline: {learning_rate: 0.1}}\n")
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad), "-d", str(tmp_path / "w"),
                        "-s", str(ROOT / "Snakefile")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0
    assert "experiments.mtt_baseline" in r.stdout + r.stderr
    assert not (tmp_path / "w" / "results").exists()


# --- the train block, the new experiment keys and the dependencies between experiments ---

def _with_experiments(cfg, **experiments):
    cfg = copy.deepcopy(cfg)
    cfg["experiments"].update(experiments)
    return cfg


PRE = {"system": "smallcnn", "dataset": "speech_commands", "feature": "logmel16k", "seeds": [0, 1]}


def test_every_new_key_in_its_forms_is_valid(demo_config):
    train = {"optimizer": "rmsprop", "lr": 0.001, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4,
             "rho": 0.9, "eps": None, "decay": 1e-6, "batch_size": 8, "eval_batch_size": 32, "drop_last": True,
             "num_workers": 0, "checkpoint_minutes": 5,
             "stages": [{"epochs": 3, "lr": 0.01, "patience": None, "reset_optimizer": True}, {"epochs": 1}],
             "reload_best": True, "select_on": "validation", "select_metric": "loss", "select_scope": "stage",
             "normalize": {"audio": "per_band", "image": {"mean": [0.5, 0.4, 0.3], "std": 0.2}},
             "bn_momentum": {"start": 0.5, "factor": 0.5, "every_epochs": 2, "max_decay": 0.99},
             "amp": "auto", "compile": False, "channels_last": True, "retain_memory": False}
    cfg = _with_experiments(
        demo_config,
        pre=PRE,
        multi={"system": "smallcnn", "dataset": "speech_commands", "inputs": {"audio": "logmel16k", "image": "wave22k"},
               "task": "multiclass", "threshold": {"method": "max_f1", "grid": 20}, "eval_split": "validation",
               "init_from": "pre", "teacher": {"experiment": "pre", "seed": 1}, "train": train},
        listed={"system": "smallcnn", "dataset": "speech_commands", "feature": "logmel16k", "threshold": [0.3] * 10,
                "predictions_from": {"experiment": "pre"}, "train": {"normalize": {"mean": 0.0, "std": 1.0}}},
    )
    configuration.check_schema(cfg, SCHEMA)
    configuration.check_references(cfg)


@pytest.mark.parametrize("experiment, key, words", [
    ({"train": {"batch_sise": 8}}, "experiments.x.train", "'batch_sise' was unexpected"),
    ({"train": {"stages": [{"epochs": 2}, {"epochs": 1, "patiense": 2}]}}, "experiments.x.train.stages.1",
     "'patiense' was unexpected"),
    ({"train": {"stages": [{"lr": 0.1}]}}, "experiments.x.train.stages.0", "'epochs' is a required property"),
    ({"train": {"optimizer": "adamw"}}, "experiments.x.train.optimizer", "is not one of"),
    ({"train": {"normalize": "globl"}}, "experiments.x.train.normalize", "'globl' is not one of"),
    ({"train": {"normalize": {"x": {"mean": 0, "std": "a"}}}}, "experiments.x.train.normalize.x.std",
     "'a' is not of type"),
    ({"train": {"bn_momentum": {"start": 0.5}}}, "experiments.x.train.bn_momentum", "is a required property"),
    ({"inputs": {"audio": "logmel16k"}}, "experiments.x", "exactly one of feature"),
    ({"feature": None, "inputs": {"not-a-name": "logmel16k"}}, "experiments.x.inputs", "does not match"),
    ({"task": "regression"}, "experiments.x.task", "is not one of"),
    ({"threshold": "high"}, "experiments.x.threshold", "is not of type"),
    ({"threshold": {"grid": 10}}, "experiments.x.threshold", "'method' is a required property"),
    ({"eval_split": "train"}, "experiments.x.eval_split", "is not one of"),
    ({"init_from": {"experiment": "pre", "seed": "0"}}, "experiments.x.init_from.seed", "is not of type"),
    ({"teacher": {"experiment": "pre", "sed": 0}}, "experiments.x.teacher", "'sed' was unexpected"),
])
def test_schema_names_the_key_of_a_bad_experiment_setting(demo_config, experiment, key, words):
    exp = {"system": "smallcnn", "dataset": "speech_commands", "feature": "logmel16k", **experiment}
    exp = {k: v for k, v in exp.items() if v is not None}
    cfg = _with_experiments(demo_config, pre=PRE, x=exp)
    with pytest.raises(configuration.ConfigError) as e:
        configuration.check_schema(cfg, SCHEMA)
    assert f"config key {key}: " in str(e.value) and words in str(e.value), str(e.value)


@pytest.mark.parametrize("experiments, key, words", [
    ({"x": {**PRE, "init_from": "pretrain"}}, "experiments.x.init_from", "'pretrain' is not an experiment"),
    ({"x": {**PRE, "seeds": [0, 2], "init_from": "pre"}}, "experiments.x.init_from",
     "seed 2 needs 'pre' with seed 2"),
    ({"x": {**PRE, "teacher": {"experiment": "pre", "seed": 5}}}, "experiments.x.teacher",
     "needs 'pre' with seed 5"),
    ({"x": {**PRE, "dataset": "mtt", "predictions_from": "pre"}}, "experiments.x.predictions_from",
     "not on this experiment's dataset 'mtt'"),
    ({"x": {**PRE, "init_from": "x"}}, "experiments.x.init_from", "a cycle of dependencies: x -init_from-> x"),
    ({"a": {**PRE, "init_from": "pre"}, "b": {**PRE, "teacher": "a"}, "pre": {**PRE, "predictions_from": "b"}},
     "experiments.pre.predictions_from",
     "a cycle of dependencies: pre -predictions_from-> b -teacher-> a -init_from-> pre"),
    ({"x": {"system": "smallcnn", "dataset": "speech_commands", "inputs": {"audio": "mfcc"}}},
     "experiments.x.inputs.audio", "'mfcc' is not a feature spec"),
    ({"x": {**PRE, "train": {"normalize": {"audio": "global"}}}}, "experiments.x.train.normalize.audio",
     "not an input of this experiment"),
    ({"x": {**PRE, "threshold": {"method": "best_f1"}}}, "experiments.x.threshold.method",
     "unknown method 'best_f1'"),
])
def test_reference_errors_of_inputs_and_dependencies_name_the_key(demo_config, experiments, key, words):
    cfg = _with_experiments(demo_config, **{"pre": PRE, **experiments})
    configuration.check_schema(cfg, SCHEMA)
    with pytest.raises(configuration.ConfigError) as e:
        configuration.check_references(cfg)
    assert f"config key {key}: " in str(e.value) and words in str(e.value), str(e.value)


def test_snakemake_names_a_train_typo_before_any_job(tmp_path, demo_config):
    cfg = copy.deepcopy(demo_config)
    cfg["experiments"]["mtt_smallcnn"]["train"] = {"batch_sise": 8}
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(path), "-d", str(tmp_path / "w"),
                        "-s", str(ROOT / "Snakefile")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0
    assert "config key experiments.mtt_smallcnn.train: Additional properties are not allowed ('batch_sise' was " \
           "unexpected)" in r.stdout + r.stderr
    assert not (tmp_path / "w" / "results").exists()
