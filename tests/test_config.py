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
    (lambda c: c.update(datasets={**c["datasets"], "esc50": {}}), "datasets"),
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
