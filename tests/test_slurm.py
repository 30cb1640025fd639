"""profiles/slurm against a real SLURM: a single-node cluster on this machine (Debian's slurm-wlm and munge,
slurmctld and slurmd on localhost, one fake GPU) runs the demo through `--profile profiles/slurm`, and the results
equal a local run's. Skipped, with the reason, unless root with the binaries (.ci/run installs them) and the
executor plugin. Every daemon the test starts is stopped by its PID, also when the test fails.

The dry-run test needs only the plugin: the paper's DAG through the profile, GPUs on train/evaluate only.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles/slurm"
ETC = Path("/etc/slurm")  # srun inside a job drops SLURM_CONF, so the cluster's config has to live here
MARK = "# written by soundbench tests/test_slurm.py (removed when the test ends)"
RUN_SECONDS = 900  # the SLURM run is killed (timeout -k) after this: a hung executor ignores SIGTERM

pytestmark = pytest.mark.slurm


def _plugin_missing() -> str | None:
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError as e:
        return f"snakemake-executor-plugin-slurm is not installed ({e}); pip install -r requirements.txt"
    return None


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def _running(comm: str) -> list[int]:
    out = []
    for f in Path("/proc").glob("[0-9]*/comm"):
        try:
            if f.read_text().strip() == comm:
                out.append(int(f.parent.name))
        except OSError:
            pass
    return out


def _cluster_missing() -> str | None:
    if sys.platform != "linux":
        return "a local SLURM cluster needs Linux"
    if os.geteuid() != 0:
        return "needs root to start munged, slurmctld and slurmd (.ci/run installs slurm-wlm and munge as root)"
    missing = [b for b in ("sinfo", "sbatch", "squeue", "scontrol", "scancel", "srun", "slurmctld", "slurmd",
                           "munged", "munge", "unmunge") if not _which(b)]
    if missing:
        return f"SLURM/munge binaries not installed ({', '.join(missing)}): apt-get install slurm-wlm munge"
    conf = ETC / "slurm.conf"
    if conf.exists() and MARK not in conf.read_text(errors="replace"):
        return f"{conf} exists and is not ours: this machine has a SLURM configuration the test must not replace"
    if _running("slurmctld") or _running("slurmd"):
        return "a slurmctld or slurmd is already running on this machine"
    return _plugin_missing()


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _until(what: str, check, seconds: float = 60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise RuntimeError(f"local SLURM: timed out waiting for {what}")


def _munge_works() -> bool:
    enc = subprocess.run([_which("munge"), "-n"], capture_output=True)
    if enc.returncode != 0:
        return False
    return subprocess.run([_which("unmunge")], input=enc.stdout, capture_output=True).returncode == 0


class LocalSlurm:
    """munged (unless one already answers), slurmctld and slurmd in the foreground, as children of this process,
    so that stopping them means signalling exactly these PIDs."""

    def __init__(self):
        self.procs: dict[str, subprocess.Popen] = {}
        self.written: list[Path] = []
        self.dir = Path(tempfile.mkdtemp(prefix="soundbench-slurm-"))
        self.dir.chmod(0o755)
        self.host = socket.gethostname().split(".")[0]

    def config(self) -> str:
        ctld_port, d_port = _free_ports(2)
        d = self.dir
        return f"""{MARK}
ClusterName=soundbenchtest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# the node below is declared with more CPUs and memory than this machine has, so the profile's real per-rule
# requests (4 CPUs and 16 GB per training job) schedule unchanged; nothing enforces them here (no cgroups)
SlurmdParameters=config_overrides
DefMemPerCPU=2000
ReturnToService=2
MailProg=/bin/true
# without slurmdbd: no accounting, so the executor has to query squeue, which needs MinJobAge >= 120
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
GresTypes=gpu
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmdSpoolDir={d}/spool
StateSaveLocation={d}/state
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
NodeName={self.host} NodeAddr=127.0.0.1 CPUs=4 RealMemory=32000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""

    def _write(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.written.append(path)

    def _start(self, name: str, argv: list[str], **kw) -> None:
        log = open(self.dir / f"{name}.out", "w")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)

    def start(self) -> None:
        for sub in ("spool", "state"):
            (self.dir / sub).mkdir()
        self._write(ETC / "slurm.conf", self.config())
        # the fake GPU: a gres backed by /dev/null, so that `--gpus=1` jobs schedule (and serialise) here
        self._write(ETC / "gres.conf", f"{MARK}\nNodeName={self.host} Name=gpu File=/dev/null\n")
        if not _munge_works():
            run = Path("/run/munge")
            run.mkdir(parents=True, exist_ok=True)
            shutil.chown(run, "munge", "munge")
            Path("/var/log/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/var/log/munge", "munge", "munge")
            Path("/var/lib/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/var/lib/munge", "munge", "munge")
            self._start("munged", [_which("munged"), "--foreground"], user="munge", group="munge")
            _until("munged", _munge_works, 30)
        self._start("slurmctld", [_which("slurmctld"), "-D"])
        self._start("slurmd", [_which("slurmd"), "-D"])

        def idle():
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited ({p.returncode}): {self.logs()}")
            r = subprocess.run([_which("sinfo"), "-h", "-o", "%T"], capture_output=True, text=True)
            return r.returncode == 0 and r.stdout.strip() == "idle"

        _until("the node to be idle", idle, 60)

    def jobs(self) -> list[dict]:
        """Every job slurmctld still knows (finished ones stay MinJobAge seconds): `scontrol show job` fields."""
        r = subprocess.run([_which("scontrol"), "show", "job", "-o"], capture_output=True, text=True)
        out = []
        for line in r.stdout.splitlines():
            if "JobId=" in line:
                out.append(dict(re.findall(r"(\w+)=(\S*)", line)))
        return out

    def logs(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-2000:]}"
                         for f in sorted(self.dir.glob("*.log")) + sorted(self.dir.glob("*.out")))

    def stop(self) -> None:
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            subprocess.run([_which("scancel"), "--full", "--partition=debug"], capture_output=True, timeout=30)
            try:
                _until("the queue to drain", lambda: not subprocess.run(
                    [_which("squeue"), "-h"], capture_output=True, text=True).stdout.strip(), 30)
            except RuntimeError:
                pass
        for name in ("slurmd", "slurmctld", "munged"):  # only the PIDs started here
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        for path in self.written:
            if path.exists() and MARK in path.read_text(errors="replace"):
                path.unlink()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    reason = _cluster_missing()
    if reason:
        pytest.skip(reason)
    c = LocalSlurm()
    try:
        c.start()
        r = subprocess.run([_which("sbatch"), "--wrap", "true", "-o", "/dev/null"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr + c.logs()
        yield c
    finally:
        c.stop()


# the demo config of the workflow test, one dataset, the baseline and a small CNN
CONFIG = {
    "datasets": {"speech_commands": {"source": "demo", "demo": {"per_word": 14}}},
    "features": {"logmel16k": {"kind": "logmel", "sample_rate": 16000, "n_fft": 512, "hop_length": 256,
                               "n_mels": 40}},
    "experiments": {
        "sc_baseline": {"system": "baseline", "dataset": "speech_commands", "feature": "logmel16k"},
        "sc_cnn": {"system": "smallcnn", "dataset": "speech_commands", "feature": "logmel16k",
                   "train": {"stages": [{"epochs": 2}]}},
    },
}


def _snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args,
           "--configfile", str(workdir / "config.yaml")]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def test_demo_through_sbatch_equals_the_local_run(cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "slurm"
    for d in (local, remote):
        d.mkdir()
        (d / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    t0 = time.monotonic()
    r = _snakemake(local, "--cores", "2")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    t_local = time.monotonic() - t0

    t0 = time.monotonic()
    # the profile as shipped, plus what this cluster needs: no accounting database (squeue for the status and
    # no account), and quick polling; the run is wrapped in `timeout -k` because a hung executor ignores SIGTERM
    cmd = ["timeout", "-k", "10", str(RUN_SECONDS), sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
           "-d", str(remote), "--profile", str(PROFILE), "--jobs", "2", "--slurm-status-command", "squeue",
           "--slurm-no-account", "--slurm-init-seconds-before-status-checks", "5",
           "--seconds-between-status-checks", "5", "--slurm-keep-successful-logs",
           "--configfile", str(remote / "config.yaml")]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=RUN_SECONDS + 60)
    t_slurm = time.monotonic() - t0
    assert r.returncode == 0, (f"rc {r.returncode} (124/137: killed by timeout)\n" + r.stdout[-4000:]
                               + r.stderr[-6000:] + cluster.logs())

    # every job that does work went through sbatch; the local rules did not
    logs = remote / ".snakemake/slurm_logs"
    for rule in ("unpack", "manifest", "features", "train", "evaluate"):
        assert list((logs / f"rule_{rule}").rglob("*.log")), rule
    for rule in ("demo_release", "fetch", "aggregate"):
        assert not (logs / f"rule_{rule}").exists(), rule
    # slurmctld's record of the jobs: a GPU for the CNN's train and evaluate, none for anything else
    jobs = [j for j in cluster.jobs() if j.get("Comment", "").startswith("rule_")]
    assert jobs and all(j["JobState"] == "COMPLETED" for j in jobs), jobs
    gpu = {j["Comment"] for j in jobs if "gpu" in j.get("TresPerJob", "")}
    assert {c.split("_wildcards")[0] for c in gpu} == {"rule_train", "rule_evaluate"}, gpu
    assert all("sc_cnn" in c for c in gpu) and len(gpu) == 2, gpu
    train = next(j for j in jobs if j["Comment"] in gpu and j["Comment"].startswith("rule_train"))
    assert train["NumCPUs"] == "4" and train["TimeLimit"] == "08:00:00", train  # the profile's cpus_per_gpu, runtime

    # identical results
    a = pd.read_csv(local / "results/per_seed.csv")
    b = pd.read_csv(remote / "results/per_seed.csv")
    key = ["dataset", "system", "variant", "seed", "metric"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert len(a) > 0 and a[key].equals(b[key])
    assert a["value"].tolist() == b["value"].tolist()  # bit-identical metrics
    ta, tb = (pd.read_csv(d / "results/tables.csv").sort_values(key[:3] + ["metric"]) for d in (local, remote))
    for col in ("mean", "std", "n_train", "n_test", "device"):
        assert ta[col].tolist() == tb[col].tolist(), col
    for d in (local, remote):
        info = json.loads((d / "results/speech_commands/smallcnn/sc_cnn/seed-0/train.json").read_text())
        assert info["device"] == "cpu"  # the fake GPU is /dev/null: CUDA is absent, so training ran on the CPU
    print(f"local run {t_local:.0f} s, SLURM run {t_slurm:.0f} s ({len(jobs)} sbatch jobs)")


# --- the paper's DAG through the profile (no daemons) ---

def test_paper_dry_run_lists_every_job_with_gpus_on_train_and_evaluate_only(tmp_path):
    reason = _plugin_missing()
    if reason:
        pytest.skip(reason)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--profile",
           str(PROFILE), "-n", "--configfile", str(ROOT / "workflow/experiments/paper.yaml")]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout + r.stderr
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[-1], re.M))
    total = int(stats.pop("total"))
    paper = yaml.safe_load((ROOT / "workflow/experiments/paper.yaml").read_text())
    runs = sum(len(e.get("seeds", [0])) for e in paper["experiments"].values())
    assert int(stats["train"]) == runs and int(stats["evaluate"]) == runs
    assert {"fetch", "unpack", "manifest", "features", "aggregate"} <= set(stats)

    jobs = []  # (rule, resources) of every job block of the dry run
    for block in re.split(r"\n(?=\[[^\]]*\d{4}\]\n)", out):
        m = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if m:
            res = re.search(r"^\s+resources: (.*)$", block, re.M)
            jobs.append((m.group(1), dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {}))
    assert len(jobs) == total, (len(jobs), total)
    with_gpu = {rule for rule, res in jobs if int(res.get("gpu", 0)) > 0}
    assert with_gpu == {"train", "evaluate"}, with_gpu
    for rule, res in jobs:
        if rule in ("train", "evaluate"):
            assert "gpu" in res and "cpus_per_gpu" in res and int(res["mem_mb"]) >= 8000, (rule, res)
        else:
            assert "gpu" not in res and "cpus_per_gpu" not in res, (rule, res)
    assert int(next(res for rule, res in jobs if rule == "train")["runtime"]) >= 60


def test_profile_resources_grow_with_attempt():
    """Every per-rule expression of the profile is valid Python of `attempt`, and memory and walltime grow."""
    prof = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert prof["executor"] == "slurm" and prof["retries"] >= 1
    rules = {"*": prof["default-resources"], **prof["set-resources"]}
    for rule, res in rules.items():
        for name in ("mem_mb", "runtime"):
            if name in res:
                v1, v2 = (eval(str(res[name]), {"attempt": a}) for a in (1, 2))
                assert v2 > v1 > 0, (rule, name)


# --- profiles/cluster-generic with a stand-in `qsub` (no PBS here): the template as shipped, filled per job ---

FAKE_QSUB = """#!/usr/bin/env bash
# stand-in for qsub: records its arguments, runs the job script in the background, prints a job id
printf '%s\\n' "$*" >> "$FAKE_QSUB_DIR/calls.txt"
id=$RANDOM$RANDOM
bash "${@: -1}" > "$FAKE_QSUB_DIR/$id.out" 2>&1 &
echo $! >> "$FAKE_QSUB_DIR/pids.txt"
echo "$id.fakepbs"
"""


def test_cluster_generic_profile_submits_every_job_with_its_resources(tmp_path):
    try:
        import snakemake_executor_plugin_cluster_generic  # noqa: F401
    except ImportError as e:
        pytest.skip(f"snakemake-executor-plugin-cluster-generic is not installed ({e})")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "qsub").write_text(FAKE_QSUB)
    (fake / "qsub").chmod(0o755)
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}", "FAKE_QSUB_DIR": str(fake)}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), "--profile",
           str(ROOT / "profiles/cluster-generic"), "--jobs", "2", "--seconds-between-status-checks", "2",
           "--configfile", str(wd / "config.yaml")]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    finally:
        for pid in (fake / "pids.txt").read_text().split() if (fake / "pids.txt").exists() else []:
            try:
                os.kill(int(pid), signal.SIGKILL)  # only the job scripts this test's qsub started, if any is left
            except ProcessLookupError:
                pass
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    calls = (fake / "calls.txt").read_text().splitlines()
    by_rule = {}
    for c in calls:
        by_rule.setdefault(re.search(r"-N sb\.(\w+)\.", c).group(1), []).append(c)
    assert set(by_rule) == {"unpack", "manifest", "features", "train", "evaluate"}, by_rule.keys()
    train = sorted(by_rule["train"], key=lambda c: "ngpus=1" in c)
    assert "ngpus=0" in train[0] and "ngpus=1" in train[1]  # baseline, smallcnn
    assert "ncpus=4:mem=16000mb" in train[1] and "walltime=480:00" in train[1], train[1]
    assert all("ngpus=0" in c for c in by_rule["features"] + by_rule["unpack"] + by_rule["manifest"])
    assert (wd / "results/tables.csv").exists()
