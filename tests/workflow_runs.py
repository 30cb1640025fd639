"""Running the workflow from the tests: Snakemake on a config in a work directory, and what a dry run plans."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args,
           "--configfile", str(cfg)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)


def finished_run(workdir: Path, config: dict) -> Path:
    """Run the workflow to results/tables.csv in workdir (2 cores); fails with the end of its output."""
    r = snakemake(workdir, config, "--cores", "2", "results/tables.csv")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return workdir


def planned_jobs(workdir: Path, config: dict) -> dict[str, int]:
    """{rule: number of jobs} that a dry run plans."""
    r = snakemake(workdir, config, "-n", "--quiet", "rules", "--cores", "1")
    assert r.returncode == 0, r.stderr
    jobs = {}
    for line in (r.stdout + r.stderr).splitlines():
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


def planned(workdir: Path, config: dict) -> list[dict]:
    """Every job of a dry run: {"rule", "input": [paths], "wildcards": {name: value}, "shell": [argv words]}."""
    r = snakemake(workdir, config, "-n", "-p", "--cores", "1")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    jobs = []
    for line in r.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            jobs.append({"rule": m.group(1), "input": [], "wildcards": {}, "shell": []})
        elif jobs and line.startswith("    input: "):
            jobs[-1]["input"] = line.split(": ", 1)[1].split(", ")
        elif jobs and line.startswith("    wildcards: "):
            jobs[-1]["wildcards"] = dict(kv.split("=", 1) for kv in line.split(": ", 1)[1].split(", "))
        elif jobs and line.startswith("Shell command: "):
            jobs[-1]["shell"] = shlex.split(line.split(": ", 1)[1])
    return jobs


def arg(words: list[str], flag: str) -> str | None:
    """The value of a flag in a command's words (None when absent)."""
    return words[words.index(flag) + 1] if flag in words else None
