"""Preemption through Snakemake: a training job killed mid-epoch (SIGTERM, as a batch system does at walltime or
preemption) resumes on the rerun from its checkpoint and ends with exactly the uninterrupted run's weights and
metrics (CPU, same seed). Also the GPU lock files that keep two jobs of one workstation off the same GPU
(soundbench.devices), tested without a GPU."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from soundbench import devices
from soundbench.training import loop

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 16

# Two experiments with identical settings: the training run does not depend on the variant's name (only its
# checkpoint path and run directory do), so sc_ref is the uninterrupted reference of sc_kill in one workdir.
_SAMPLECNN = {"system": "samplecnn", "dataset": "speech_commands", "feature": "wave22k",
              "params": {"init_features": 8, "segment_samples": 22050},
              # 73 training clips: 8 steps per epoch (the last batch of 3; BatchNorm needs more than 1), ~1 s per
              # epoch on one thread; a checkpoint every 0.6 s besides the ones at SIGTERM and at epoch ends
              "train": {"checkpoint_minutes": 0.01, "batch_size": 10, "stages": [{"epochs": EPOCHS}]}}
CONFIG = {
    "datasets": {"speech_commands": {"source": "demo", "demo": {"per_word": 14}}},
    "features": {"wave22k": {"kind": "waveform", "sample_rate": 22050, "pad": "repeat"}},
    "experiments": {"sc_ref": _SAMPLECNN, "sc_kill": _SAMPLECNN},
}
RUN = "results/speech_commands/samplecnn/{}/seed-0"
CKPT = "checkpoints/speech_commands/samplecnn/sc_kill/seed-0/last.pt"
LOG = "logs/train/speech_commands/samplecnn/sc_kill/seed-0.log"
DEADLINE = 150  # seconds for any one phase


def _cmd(workdir: Path, *targets: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2",
            *targets, "--configfile", str(workdir / "config.yaml")]  # --configfile takes every word after it


def _descendants(pid: int) -> list[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    out, frontier = [], {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier}
        out.extend(frontier)
    return out


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _training_pids(snakemake_pid: int) -> list[int]:
    """The `python -m soundbench train` processes among the run's descendants (not the shell around them)."""
    return [p for p in _descendants(snakemake_pid) if {"soundbench", "train", "--checkpoint"} <= set(_argv(p))]


def _wait_gone(pids: list[int], deadline: float = 60) -> None:
    """Until the processes ended (an orphaned trainer may outlive Snakemake by one step and its checkpoint)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline:
        alive = []
        for p in pids:
            try:
                state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state not in ("Z", "X"):
                alive.append(p)
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes {pids} still running")


def _position(path: Path):
    """(stage, epoch, step) of the checkpoint, or None while there is none."""
    try:
        s = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, EOFError, RuntimeError):
        return None
    return s["stage"], s["epoch"], s["step"]


def _wait_for(proc: subprocess.Popen, what: str, predicate, deadline: float = DEADLINE):
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"snakemake exited ({proc.returncode}) before {what}:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _first_bar(log: Path):
    """(stage, epoch, step) of the first progress bar in a training log: where that process started."""
    m = re.search(r"stage (\d+) epoch (\d+):\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)", log.read_text().replace("\r", "\n"))
    assert m, log.read_text()[-2000:]
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    procs: list[subprocess.Popen] = []
    yield tmp_path, procs
    for p in procs:  # a failed assertion must not leave a run of ours behind (only our own process groups)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.mark.slow
def test_sigterm_mid_epoch_then_rerun_resumes_to_the_uninterrupted_result(workdir):
    wd, procs = workdir
    started = time.monotonic()
    ref = subprocess.run(_cmd(wd, RUN.format("sc_ref") + "/metrics.json"), capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
    reference = time.monotonic()

    def start():
        p = subprocess.Popen(_cmd(wd, RUN.format("sc_kill") + "/metrics.json"), cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(p)
        return p

    def past(epoch: int):
        """The checkpoint's position once training is in an epoch after `epoch`. SIGTERM then stops it after
        the step under way, so the checkpoint it leaves is always inside an epoch (step >= 1)."""
        def check():
            pos = _position(wd / CKPT)
            return pos if pos and pos[1] > epoch else None
        return check

    # 1. What SLURM does to a job at walltime or preemption: SIGTERM to the training process only.
    run = start()
    _wait_for(run, "training to pass epoch 0", past(0))
    pids = _training_pids(run.pid)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGTERM)
    out = run.communicate(timeout=DEADLINE)[0]
    assert run.returncode != 0, out[-3000:]  # the job failed (exit 143); Snakemake says so and stops
    _wait_gone(pids)
    phase1 = time.monotonic()
    killed_at = _position(wd / CKPT)
    assert killed_at[1] >= 1 and killed_at[2] > 0, killed_at  # stopped inside an epoch after the first
    assert not (wd / RUN.format("sc_kill") / "model.pt").exists()

    # 2. The rerun resumes there; then SIGTERM to the whole run (Snakemake and its job, as when the allocation
    # that runs Snakemake itself ends): the trainer checkpoints, Snakemake exits.
    run = start()
    resumed_at = _wait_for(run, "the rerun to pass the next epoch", past(killed_at[1]))
    assert _first_bar(wd / LOG) == killed_at  # the new process began at the checkpoint, not at epoch 0
    assert resumed_at >= killed_at
    pids = _training_pids(run.pid)
    assert len(pids) == 1, pids
    os.killpg(run.pid, signal.SIGTERM)
    out = run.communicate(timeout=DEADLINE)[0]
    assert run.returncode != 0, out[-3000:]
    _wait_gone(pids)  # the job's shell died at once; the trainer finishes its step and checkpoints first
    killed_again = _position(wd / CKPT)
    assert killed_again > killed_at and killed_again[2] > 0, (killed_at, killed_again)

    # 3. A plain rerun finishes it.
    fin = subprocess.run(_cmd(wd, RUN.format("sc_kill") + "/metrics.json"), capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert fin.returncode == 0, fin.stdout[-3000:] + fin.stderr[-3000:]
    assert _first_bar(wd / LOG) == killed_again

    a, b = wd / RUN.format("sc_ref"), wd / RUN.format("sc_kill")
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())
    assert (a / "history.csv").read_text() == (b / "history.csv").read_text()
    ma, mb = (torch.load(d / "model.pt", map_location="cpu", weights_only=False) for d in (a, b))
    assert ma["state_dict"].keys() == mb["state_dict"].keys()
    for k in ma["state_dict"]:
        assert torch.equal(ma["state_dict"][k], mb["state_dict"][k]), k
    final = torch.load(wd / CKPT, map_location="cpu", weights_only=False)
    assert [h["epoch"] for h in final["history"]] == list(range(EPOCHS))
    print(f"preemption test: {time.monotonic() - started:.0f} s (reference run incl. download and features "
          f"{reference - started:.0f} s, first kill {phase1 - reference:.0f} s); killed at {killed_at}, then at "
          f"{killed_again} (stage, epoch, step)")


# --- one GPU per process on a workstation (soundbench.devices), with a fake device count ---

def _hold_in_subprocess(lock_dir: Path, count: int, env: dict | None = None) -> subprocess.Popen:
    """Another process that takes a GPU and keeps it until its stdin closes; prints the device it got."""
    code = ("import sys; from soundbench import devices\n"
            f"d, lock = devices.acquire_device('auto', device_count={count}, directory={str(lock_dir)!r}, wait=False)\n"
            "print(d, flush=True); sys.stdin.read()")
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})})
    return p


@pytest.fixture
def no_scheduler(monkeypatch):
    for var in ("SLURM_JOB_ID", "SOUNDBENCH_GPU_LOCK", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    yield
    for lock in list(devices._HELD):
        lock.release()


def test_two_processes_never_get_the_same_gpu(tmp_path, no_scheduler):
    first = _hold_in_subprocess(tmp_path, 2)
    try:
        assert first.stdout.readline().strip() == "cuda:0"
        dev, lock = devices.acquire_device("auto", device_count=2, directory=tmp_path, wait=False)
        assert str(dev) == "cuda:1" and lock.held
        with pytest.raises(TimeoutError, match="--resources gpu=N"):  # both taken
            devices.acquire_device("cuda:0", device_count=2, directory=tmp_path, wait=False)
        lock.release()
    finally:
        first.stdin.close()
        first.wait(30)
    # the holder ended: its lock went with it, without any cleanup
    dev, lock = devices.acquire_device("cuda:0", device_count=2, directory=tmp_path, wait=False)
    assert str(dev) == "cuda:0"
    assert (tmp_path / "gpu-0.lock").read_text().split()[0] == str(os.getpid())


def test_waits_for_a_gpu_to_be_released(tmp_path, no_scheduler):
    holder = _hold_in_subprocess(tmp_path, 1)
    try:
        assert holder.stdout.readline().strip() == "cuda:0"
        with pytest.raises(TimeoutError):
            devices.acquire_device("auto", device_count=1, directory=tmp_path, poll_seconds=0.05, timeout=0.3)
        t0 = time.monotonic()
        import threading
        threading.Timer(0.5, holder.stdin.close).start()
        dev, _ = devices.acquire_device("auto", device_count=1, directory=tmp_path, poll_seconds=0.05, timeout=30)
        assert str(dev) == "cuda:0" and time.monotonic() - t0 >= 0.4
    finally:
        if not holder.stdin.closed:
            holder.stdin.close()
        holder.wait(30)


def test_same_process_keeps_its_gpu(tmp_path, no_scheduler):
    d1, l1 = devices.acquire_device("auto", device_count=2, directory=tmp_path, wait=False)
    d2, l2 = devices.acquire_device("auto", device_count=2, directory=tmp_path, wait=False)
    assert d1 == d2 and l1 is l2


def test_cuda_visible_devices_names_the_locks(tmp_path, no_scheduler, monkeypatch):
    # a process that sees physical GPUs 2 and 3 locks "gpu-2" for its cuda:0; one that sees only GPU 3 then
    # cannot take 3 while the first holds it
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    other = _hold_in_subprocess(tmp_path, 2, env={"CUDA_VISIBLE_DEVICES": "2,3"})
    try:
        assert other.stdout.readline().strip() == "cuda:0"
        assert (tmp_path / "gpu-2.lock").exists()
        dev, _ = devices.acquire_device("auto", device_count=1, directory=tmp_path, wait=False)
        assert str(dev) == "cuda:0" and (tmp_path / "gpu-3.lock").exists()
        other2 = _hold_in_subprocess(tmp_path, 2, env={"CUDA_VISIBLE_DEVICES": "2,3"})
        assert other2.stdout.readline() == ""  # both of its GPUs are taken: it fails (wait=False)
        assert other2.wait(30) != 0
    finally:
        other.stdin.close()
        other.wait(30)


def test_scheduler_assigned_gpu_is_not_locked(tmp_path, no_scheduler, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    dev, lock = devices.acquire_device("auto", device_count=1, directory=tmp_path, wait=False)
    assert str(dev) == "cuda:0" and lock is None and not list(tmp_path.iterdir())
    monkeypatch.setenv("SOUNDBENCH_GPU_LOCK", "1")
    dev, lock = devices.acquire_device("auto", device_count=1, directory=tmp_path, wait=False)
    assert lock is not None and lock.held


def test_cpu_without_cuda(no_scheduler):
    assert devices.acquire_device("auto", device_count=0) == (torch.device("cpu"), None)
    assert devices.acquire_device("cpu") == (torch.device("cpu"), None)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        devices.acquire_device("cuda", device_count=0)
    with pytest.raises(RuntimeError, match="only 1 CUDA device"):
        devices.acquire_device("cuda:3", device_count=1, wait=False)
    assert devices.describe(torch.device("cpu")) == "cpu"
    if not torch.cuda.is_available():
        assert loop.device_for("auto") == torch.device("cpu")


def test_amp_path_checkpoints_its_scaler_and_resumes_exactly(tmp_path):
    """The mixed-precision step (CUDA's float16 path, here forced on the CPU with bfloat16) keeps its GradScaler
    state in the checkpoint, and a run interrupted mid-epoch still resumes to the uninterrupted result."""
    from test_training import CFG, Toy, model  # tests/ is on sys.path (pytest's default import mode)

    cfg = {**CFG, "amp": True}

    def run(name, kill_at=None):
        return loop.fit(model(), Toy(kill_at=kill_at), Toy(48, seed=1), "multiclass", cfg, 3, tmp_path / name, "h",
                        torch.device("cpu"), progress=False)

    ref, ref_hist = run("ref.pt")
    with pytest.raises(loop.Interrupted):
        run("ck.pt", kill_at=250)
    state = torch.load(tmp_path / "ck.pt", weights_only=False)
    assert state["step"] > 0 and state["scaler"]["scale"] > 0
    resumed, hist = run("ck.pt")
    assert hist == ref_hist
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
