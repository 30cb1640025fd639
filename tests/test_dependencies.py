"""Experiments that build on another experiment's run (init_from, teacher, predictions_from): the DAG edges, what a
change reruns (dry-run job lists on one finished workdir) and a pre-train -> fine-tune pair end to end."""
from __future__ import annotations

import copy
import json

import pytest
from workflow_runs import arg, finished_run, planned, planned_jobs


def smallcnn(**keys) -> dict:
    return {"system": "smallcnn", "dataset": "speech_commands", "feature": "logmel16k",
            "train": {"stages": [{"epochs": 1}]}, **keys}


def baseline(**keys) -> dict:
    return {"system": "baseline", "dataset": "speech_commands", "feature": "logmel16k", **keys}


# three independent pairs, so that what a change reruns tells the edges apart
CONFIG = {
    "datasets": {"speech_commands": {"source": "demo", "demo": {"per_word": 14}}},
    "features": {"logmel16k": {"kind": "logmel", "sample_rate": 16000, "n_fft": 512, "hop_length": 256,
                               "n_mels": 40}},
    "experiments": {
        "pre": smallcnn(),
        "ft": smallcnn(init_from="pre"),
        "teach": smallcnn(),
        "student": smallcnn(teacher="teach"),
        "base": baseline(),
        "post": baseline(predictions_from="base"),
    },
}
RUN = "results/speech_commands/{system}/{variant}/seed-{seed}"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return finished_run(tmp_path_factory.mktemp("dependencies"), CONFIG)


@pytest.mark.slow
def test_fine_tuning_starts_from_the_pretrained_run(finished):
    info = json.loads((finished / RUN.format(system="smallcnn", variant="ft", seed=0) / "train.json").read_text())
    init = info["init_from"]
    assert init["path"] == RUN.format(system="smallcnn", variant="pre", seed=0) + "/model.pt"
    assert init["loaded"] > 0 and init["fresh"] == 0  # the same architecture: every tensor comes from pre
    post = finished / RUN.format(system="baseline", variant="post", seed=0)
    assert (post / "predictions.h5").stat().st_size > 0 and (post / "metrics.json").exists()


@pytest.mark.slow
def test_nothing_reruns_without_a_change(finished):
    assert planned_jobs(finished, CONFIG) == {}


def _edit(variant, key, value):
    def edit(cfg):
        exp = cfg["experiments"][variant]
        exp[key] = {**exp.get(key, {}), **value}
    return edit


@pytest.mark.slow
@pytest.mark.parametrize("edit, jobs", [
    # upstream: its train and evaluate, then the downstream jobs that take its files
    (_edit("pre", "train", {"lr": 0.01}), {"train": 2, "evaluate": 2}),
    (_edit("teach", "params", {"dropout": 0.5}), {"train": 2, "evaluate": 2}),
    (_edit("base", "params", {"C": 0.5}), {"train": 1, "evaluate": 2}),  # post's evaluate only
    # downstream: only itself
    (_edit("ft", "train", {"lr": 0.01}), {"train": 1, "evaluate": 1}),
    (_edit("student", "params", {"dropout": 0.5}), {"train": 1, "evaluate": 1}),
    (_edit("post", "params", {"C": 0.5}), {"train": 1, "evaluate": 1}),
], ids=["init_from-upstream", "teacher-upstream", "predictions_from-upstream", "init_from-downstream",
        "teacher-downstream", "predictions_from-downstream"])
def test_a_change_reruns_the_experiment_and_what_depends_on_it(finished, edit, jobs):
    cfg = copy.deepcopy(CONFIG)
    edit(cfg)
    assert planned_jobs(finished, cfg) == {**jobs, "aggregate": 1, "all": 1}


# --- the edges and the command lines of a dry run in an empty directory ---

EDGES = {
    **CONFIG,
    "features": {**CONFIG["features"], "wave16k": {"kind": "waveform", "sample_rate": 16000}},
    "experiments": {
        "pre": smallcnn(seeds=[0, 1]),
        # seed 1 of ft starts from seed 0 of pre, every seed of kd learns from seed 1 of pre
        "ft": smallcnn(seeds=[0, 1], init_from={"experiment": "pre", "seed": 0}, eval_split="validation",
                      threshold={"method": "max_f1"}),
        "kd": smallcnn(seeds=[0, 2], teacher={"experiment": "pre", "seed": 1}, task="multilabel"),
        "two": {"system": "smallcnn", "dataset": "speech_commands", "inputs": {"audio": "logmel16k", "wave": "wave16k"},
                "predictions_from": {"experiment": "pre"}, "threshold": [0.2, 0.3]},
    },
}


@pytest.fixture(scope="module")
def edges(tmp_path_factory):
    return planned(tmp_path_factory.mktemp("edges"), EDGES)


def _job(jobs, rule, variant, seed):
    found = [j for j in jobs if j["rule"] == rule and j["wildcards"].get("variant") == variant
             and j["wildcards"].get("seed") == str(seed)]
    assert len(found) == 1, (rule, variant, seed)
    return found[0]


def test_dependencies_are_inputs_and_flags_of_the_runs_that_need_them(edges):
    pre = RUN.format(system="smallcnn", variant="pre", seed="{}")
    for seed in (0, 1):
        ft = _job(edges, "train", "ft", seed)
        assert f"{pre.format(0)}/model.pt" in ft["input"] and f"{pre.format(1)}/model.pt" not in ft["input"]
        assert arg(ft["shell"], "--init-from") == f"{pre.format(0)}/model.pt" and "--teacher" not in ft["shell"]
    for seed in (0, 2):
        kd = _job(edges, "train", "kd", seed)
        assert arg(kd["shell"], "--teacher") == f"{pre.format(1)}/model.pt"
        assert f"{pre.format(1)}/model.pt" in kd["input"]
        assert arg(kd["shell"], "--task") == "multilabel"
    two = _job(edges, "evaluate", "two", 0)
    assert arg(two["shell"], "--predictions-from") == f"{pre.format(0)}/predictions.h5"
    assert f"{pre.format(0)}/predictions.h5" in two["input"]
    assert "--init-from" not in _job(edges, "train", "pre", 0)["shell"]
    assert "--predictions-from" not in _job(edges, "evaluate", "ft", 0)["shell"]


def test_evaluation_arguments_come_from_the_experiment(edges):
    ft = _job(edges, "evaluate", "ft", 1)
    assert arg(ft["shell"], "--split") == "validation"
    assert json.loads(arg(ft["shell"], "--threshold")) == {"method": "max_f1"}
    two = _job(edges, "evaluate", "two", 0)
    assert arg(two["shell"], "--split") == "test" and json.loads(arg(two["shell"], "--threshold")) == [0.2, 0.3]
    assert json.loads(arg(_job(edges, "evaluate", "pre", 0)["shell"], "--threshold")) == 0.5
    train = _job(edges, "train", "pre", 0)["shell"]
    assert arg(train, "--dataset") == "speech_commands" and arg(train, "--task") == "multiclass"


def test_every_named_input_brings_the_shards_of_its_spec(edges):
    features = {(j["wildcards"]["feature"], j["wildcards"]["shard"]) for j in edges if j["rule"] == "features"}
    assert features == {(f, s) for f in ("logmel16k", "wave16k") for s in ("0", "1")}
    train = _job(edges, "train", "two", 0)
    inputs = json.loads(arg(train["shell"], "--inputs"))
    assert set(inputs) == {"audio", "wave"}
    assert inputs["wave"]["spec"]["kind"] == "waveform" and inputs["wave"]["spec"]["clip_seconds"] == 1.0
    for name, spec in (("audio", "logmel16k"), ("wave", "wave16k")):
        shards = [f"results/speech_commands/features/{spec}/shard-{k}.h5" for k in (0, 1)]
        assert inputs[name]["shards"] == shards and set(shards) <= set(train["input"])
    single = json.loads(arg(_job(edges, "train", "pre", 0)["shell"], "--inputs"))
    assert list(single) == ["x"] and single["x"]["spec"]["n_mels"] == 40
