"""`soundbench bench workflow`: its counts are Snakemake's, its times come from real runs (no timed assertions)."""
from __future__ import annotations

import json
import math
import re

import pytest

from soundbench.bench import workflow
from soundbench.cli import main


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert main(["bench", "workflow", "--quick", "--out", str(out)]) == 0
    return json.loads((out / "workflow.json").read_text())


@pytest.mark.slow
def test_dry_run_counts_what_snakemake_plans_for_the_paper(record, tmp_path):
    seconds, log = workflow.snakemake(tmp_path, workflow.PAPER, "-n", "--quiet", "rules")
    total = int(re.search(r"^total\s+(\d+)$", log, re.M).group(1))
    assert record["rows"][0]["jobs"] == sum(record["measured"]["paper_jobs"].values()) == total > 300
    assert record["rows"][0]["seconds"] > 0 and record["goals"][0]["goal"].startswith("dry-run of paper.yaml")


@pytest.mark.slow
def test_speedup_and_overhead_come_from_real_runs(record):
    m, d = record["measured"], record["derived"]
    jobs = len(workflow.FEATURES) * m["shards"]
    assert d["jobs"] == jobs and len(m["cores1_s"]) == len(m["cores2_s"]) >= 1
    assert all(t > 0 for t in m["cores1_s"] + m["cores2_s"] + m["shell_s"] + [m["noop_s"], m["work_s"], m["prep_s"]])
    assert math.isclose(d["speedup"], d["cores1_s"] / d["cores2_s"])
    # a build runs Snakemake and every job's process: it takes longer than the start-up and the work alone
    assert d["cores1_s"] > m["noop_s"] and d["cores1_s"] > m["work_s"]
    assert math.isclose(d["per_job_s"], (d["cores1_s"] - m["noop_s"] - m["work_s"]) / jobs)
    assert set(m["startup_s"]) >= {"demo", "fetch", "unpack", "manifest", "features", "train", "evaluate"}
    assert all(t > 0 for t in m["startup_s"].values())


@pytest.mark.slow
def test_demo_share_covers_every_job_of_the_demo(record):
    rules = {r["rule"]: r for r in record["demo_rules"]}
    assert sum(r["jobs"] for r in rules.values()) == record["derived"]["demo_jobs"]
    assert rules["features"]["jobs"] > 0 and rules["train"]["jobs"] > 0 and rules["all"]["step"] == "-"
    total = sum(r["total_s"] for r in rules.values())
    assert math.isclose(record["derived"]["share_pct"], 100 * total / record["demo_wall_s"])
    assert [g["direction"] for g in record["goals"]] == ["<=", "<=", ">="]
    assert all(g["value"] > 0 for g in record["goals"])


def test_job_counts_and_commands_parse_snakemake_logs():
    log = ("Job stats:\njob         count\n--------  -------\nfeatures        2\nall             1\n"
           "total           3\n\nShell command: OMP_NUM_THREADS=1 python -m soundbench features --spec "
           "'{\"a\": 1}' --shard 0 > logs/x.log 2>&1\nJob stats:\nfeatures 9\n")
    assert workflow.job_counts(log) == {"features": 2, "all": 1}
    assert workflow.commands(log) == [["features", "--spec", '{"a": 1}', "--shard", "0"]]
    assert "from soundbench.features.extract import extract_shard" in workflow.step_imports("features")
