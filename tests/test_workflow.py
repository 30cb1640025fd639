"""The Snakemake DAG end to end on a small demo, and what a config change reruns (dry-run job lists)."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from workflow_runs import ROOT, finished_run, planned_jobs, snakemake

CONFIG = {
    "datasets": {"speech_commands": {"source": "demo", "demo": {"per_word": 14}}},
    "features": {
        "logmel16k": {"kind": "logmel", "sample_rate": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 40},
        "logmel16k_32": {"kind": "logmel", "sample_rate": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 32},
        "wave22k": {"kind": "waveform", "sample_rate": 22050, "pad": "repeat"},
    },
    "experiments": {
        "sc_baseline": {"system": "baseline", "dataset": "speech_commands", "feature": "logmel16k"},
        "sc_cnn": {"system": "smallcnn", "dataset": "speech_commands", "feature": "logmel16k",
                   "train": {"stages": [{"epochs": 2}]}},
        "sc_cnn32": {"system": "smallcnn", "dataset": "speech_commands", "feature": "logmel16k_32",
                     "train": {"stages": [{"epochs": 2}]}},
        "sc_samplecnn": {"system": "samplecnn", "dataset": "speech_commands", "feature": "wave22k",
                         "params": {"init_features": 8, "segment_samples": 22050, "block": "rese2"},
                         "train": {"normalize": "global", "stages": [{"lr": 0.01, "epochs": 2, "patience": 1},
                                                                    {"lr": 0.002, "epochs": 1}]}},
    },
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return finished_run(tmp_path_factory.mktemp("workflow"), CONFIG)


@pytest.mark.slow
def test_demo_run_writes_table_figures_logs_and_benchmarks(finished):
    table = pd.read_csv(finished / "results/tables.csv")
    primary = table[table["primary"]]
    assert set(primary["variant"]) == {"sc_baseline", "sc_cnn", "sc_cnn32", "sc_samplecnn"}
    assert primary["mean"].map(math.isfinite).all()
    assert (primary["n_test"] > 0).all() and (primary["n_train"] > primary["n_test"]).all()
    assert primary["config_hash"].nunique() == 4
    for png in ("primary_metric.png", "training_curves.png"):
        assert (finished / "results/figures" / png).stat().st_size > 5000
    for rule in ("demo_release", "fetch", "unpack", "manifest", "features", "train", "evaluate", "aggregate"):
        assert list((finished / "logs" / rule).rglob("*.log")) or (finished / "logs" / f"{rule}.log").exists(), rule
        assert list((finished / "benchmarks").rglob("*.tsv"))
    metrics = json.loads(next((finished / "results").rglob("sc_cnn/seed-0/metrics.json")).read_text())
    assert metrics["primary"] == "accuracy" and 0 <= metrics["metrics"]["accuracy"] <= 1


@pytest.mark.slow
def test_nothing_reruns_without_a_change(finished):
    assert planned_jobs(finished, CONFIG) == {}


@pytest.mark.slow
def test_train_change_reruns_only_that_experiment(finished):
    cfg = json.loads(json.dumps(CONFIG))
    cfg["experiments"]["sc_cnn"]["train"]["lr"] = 0.01
    assert planned_jobs(finished, cfg) == {"train": 1, "evaluate": 1, "aggregate": 1, "all": 1}


@pytest.mark.slow
def test_params_change_reruns_only_that_experiment(finished):
    cfg = json.loads(json.dumps(CONFIG))
    cfg["experiments"]["sc_cnn32"]["params"] = {"dropout": 0.5}
    assert planned_jobs(finished, cfg) == {"train": 1, "evaluate": 1, "aggregate": 1, "all": 1}


@pytest.mark.slow
def test_feature_change_rebuilds_only_its_shards_and_users(finished):
    cfg = json.loads(json.dumps(CONFIG))
    cfg["features"]["logmel16k_32"]["fmin"] = 50.0
    # 2 shards of that spec, then the one experiment that uses it
    assert planned_jobs(finished, cfg) == {"features": 2, "train": 1, "evaluate": 1, "aggregate": 1, "all": 1}


@pytest.mark.slow
def test_a_new_seed_adds_only_its_jobs(finished):
    cfg = json.loads(json.dumps(CONFIG))
    cfg["experiments"]["sc_cnn"]["seeds"] = [0, 1]
    assert planned_jobs(finished, cfg) == {"train": 1, "evaluate": 1, "aggregate": 1, "all": 1}


@pytest.mark.slow
def test_report_with_captions(finished):
    r = snakemake(finished, CONFIG, "--report", str(finished / "report.html"))
    assert r.returncode == 0, r.stderr[-2000:]
    html = (finished / "report.html").read_text(errors="replace")
    assert "primary_metric.png" in html and "mean over seeds" in html  # a figure and its caption


def test_jobs_run_this_checkout_with_the_snakemake_interpreter(monkeypatch):
    """workflow/rules/common.smk puts these into the environment (declared as envvars, so cluster jobs get them)."""
    monkeypatch.syspath_prepend(str(ROOT / "workflow" / "lib"))
    from sbplan import job_environment

    env = job_environment({"PATH": "/usr/bin:/bin"}, "/co/src", "/venv/bin/python")
    assert env == {"PATH": "/venv/bin:/usr/bin:/bin", "PYTHONPATH": "/co/src"}
    assert job_environment(env, "/co/src", "/venv/bin/python") == env  # a spawned job's Snakemake adds nothing
    assert job_environment({"PATH": "/bin", "PYTHONPATH": "/x"}, "/co/src", "/venv/bin/python")["PYTHONPATH"] == \
        "/co/src:/x"
