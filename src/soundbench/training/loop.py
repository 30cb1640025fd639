"""The one training loop: staged schedules, early stopping, exact resume from any step.

Config (an experiment's `train:` merged over the system's defaults):
  optimizer: adam | sgd        lr, momentum, nesterov, weight_decay (0: the originals never applied it)
  decay: Keras time-based decay per iteration, lr_t = lr / (1 + decay * t), t reset at each stage
  batch_size, num_workers
  stages: [{epochs, lr (default: lr), patience (None: no early stopping)}]; each stage starts a fresh optimiser
  reload_best: at the end of a stage reload the weights with the lowest validation loss (SampleCNN)
  checkpoint_minutes: periodic checkpoint interval (also written at every epoch end and on SIGTERM/SIGUSR1)
  amp: auto (default: mixed precision, float16 autocast + GradScaler, on CUDA only) | true (also on CPU, bfloat16)
       | false; the scaler's state is part of the checkpoint
  compile: auto (default: torch.compile when the schedule runs >= COMPILE_MIN_STEPS steps and the model has no
       2-D convolution, which channels-last eager already serves best) | true | false (eager)
  channels_last: true (default: 2-D convolutions and their inputs in channels-last memory format) | false
  retain_memory: true (default: the CPU process keeps freed memory instead of page-faulting it back every step)
       | false; none of these three changes the arithmetic, only its rounding (compile, channels_last)

Determinism: the batch order of (stage, epoch) is a function of the seed alone, and a checkpoint stores the
position inside the epoch plus every RNG state, so a resumed run replays exactly what an uninterrupted one does.
"""
from __future__ import annotations

import copy
import ctypes
import hashlib
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from soundbench.training import checkpoint as ckpt

log = logging.getLogger("soundbench.train")

DEFAULTS = {"optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0,
            "decay": 0.0, "batch_size": 32, "num_workers": 0, "stages": [{"epochs": 10}], "reload_best": False,
            "checkpoint_minutes": 10.0, "normalize": "none", "eval_batch_size": 64,
            "compile": "auto", "channels_last": True, "retain_memory": True}
# compile: auto needs this many steps (or predict batches): a cold compile of SampleCNN's training graph takes
# 35-50 s on 2 cores (its evaluation graph as much again) and pays back within 50-200 steps (soundbench bench
# train), while the demo's runs take 100-400 steps
COMPILE_MIN_STEPS = 1000


class Interrupted(SystemExit):
    """Raised after the checkpoint was written on SIGTERM/SIGUSR1: the job ends, the rerun resumes."""

    def __init__(self):
        super().__init__(143)


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def device_for(prefer: str = "auto") -> torch.device:
    """The device of this process: a free GPU when CUDA is present (auto), else the CPU; see soundbench.devices.

    A GPU comes with an exclusive lock that this process holds until it exits, so no two jobs share a GPU."""
    from soundbench import devices

    device, _lock = devices.acquire_device(prefer)  # the lock stays referenced in devices._HELD
    return device


def retain_memory(on: bool = True) -> bool:
    """Keep freed heap memory in this process (glibc) instead of returning it to the OS; False if not glibc.

    A SampleCNN batch holds activations of hundreds of MB; glibc serves each with mmap and unmaps it on free, so
    every step page-faults its whole working set afresh (2 million faults a step at 59,049 samples, batch 23:
    more than half of the eager step on 2 cores). `on=False` restores glibc's default limits (plain eager)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    ok = mallopt(m_mmap_max, 0 if on else 65536) and mallopt(m_trim_threshold, 2**31 - 1 if on else 2**17)
    if not on:
        malloc_trim(0)
    return bool(ok)


def _has(model: nn.Module, kind: type) -> bool:
    return any(isinstance(m, kind) for m in model.modules())


def use_compile(setting, model: nn.Module, n_calls: int) -> bool:
    """Whether `compile` (auto | true | false) compiles this model for n_calls steps or batches."""
    if setting == "auto":
        # measured: compile gains 1.1-1.4x on SampleCNN, while SmallCNN runs faster in channels-last eager
        return n_calls >= COMPILE_MIN_STEPS and not _has(model, nn.Conv2d)
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"train.compile: {setting!r} is not auto, true or false")


class Forward:
    """The model's forward under the speed settings; the model itself (and its state_dict) stays unwrapped.

    The compiled graph serves the batch sizes it was made for; any other batch (a short last one) runs eagerly on
    the same weights, which spares a recompile. Compiled random ops take eager's RNG stream (fallback_random),
    so dropout masks, and a resumed run, are the eager ones."""

    def __init__(self, model: nn.Module, cfg: dict, device: torch.device, n_calls: int, batch_sizes=()):
        self.model = model
        self.channels_last = bool(cfg.get("channels_last", True)) and _has(model, nn.Conv2d)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.get("retain_memory", True) and device.type == "cpu":
            retain_memory()
        self.compiled = None
        if use_compile(cfg.get("compile", "auto"), model, n_calls):
            self.compiled = torch.compile(model, dynamic=False, options={"fallback_random": True})
        self.batch_sizes = set(batch_sizes)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.compiled is not None and x.shape[0] in self.batch_sizes:
            return self.compiled(x)
        return self.model(x)


def min_steps(cfg: dict, n_train: int) -> int:
    """The fewest training steps the schedule can take (early stopping after `patience` epochs at the earliest)."""
    epochs = sum(max(1, min(s["epochs"], s["epochs"] if s.get("patience") is None else s["patience"]))
                 for s in cfg["stages"])
    return epochs * max(1, n_train // cfg["batch_size"])


def loss_fn(task: str) -> nn.Module:
    return nn.CrossEntropyLoss() if task in ("multiclass", "multimodal") else nn.BCEWithLogitsLoss()


def _optimizer(model: nn.Module, cfg: dict, lr: float) -> torch.optim.Optimizer:
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg["momentum"], nesterov=cfg["nesterov"],
                               weight_decay=cfg["weight_decay"])
    if cfg["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=cfg["weight_decay"])
    raise ValueError(f"train.optimizer: unknown optimizer {cfg['optimizer']!r} (adam | sgd)")


def _batches(n: int, batch_size: int, seed: int, stage: int, epoch: int) -> list[np.ndarray]:
    order = np.random.default_rng([seed, stage, epoch]).permutation(n)
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        # batch norm cannot train on one example (Keras can): the straggler joins the previous batch
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches


def _collate(ds, idx) -> tuple[torch.Tensor, torch.Tensor]:
    items = [ds[int(i)] for i in idx]
    return torch.stack([it["x"] for it in items]), torch.stack([torch.as_tensor(it["y"]) for it in items])


class _Batches(torch.utils.data.Dataset):
    """Whole batches as items, so DataLoader workers prefetch them while the model trains."""

    def __init__(self, ds, batches):
        self.ds, self.batches = ds, batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return _collate(self.ds, self.batches[i])


def _loader(ds, batches, num_workers: int):
    # an own generator: a DataLoader otherwise draws its base seed from the global RNG, which would shift the
    # dropout masks of a resumed run against an uninterrupted one
    return torch.utils.data.DataLoader(_Batches(ds, batches), batch_size=None, shuffle=False,
                                       num_workers=num_workers, generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def mean_loss(model, ds, task, device, batch_size=64, num_workers=0, forward=None) -> float:
    model.eval()
    forward = forward or model
    crit = loss_fn(task)
    total, n = 0.0, 0
    batches = [np.arange(i, min(i + batch_size, len(ds))) for i in range(0, len(ds), batch_size)]
    for x, y in _loader(ds, batches, num_workers):
        out = forward(x.to(device))
        total += float(crit(out, y.to(device))) * len(x)
        n += len(x)
    return total / max(n, 1)


def fit(model: nn.Module, train_ds, val_ds, task: str, cfg: dict, seed: int, checkpoint_path: Path,
        run_hash: str, device: torch.device, progress: bool = True) -> tuple[nn.Module, list[dict]]:
    """Train `model`; returns (the selected model, history rows). Resumes from checkpoint_path when it holds a
    checkpoint of the same run_hash."""
    cfg = {**DEFAULTS, **cfg}
    model.to(device)
    crit = loss_fn(task)
    timer = ckpt.Timer(cfg["checkpoint_minutes"])
    lock = ckpt.exclusive(checkpoint_path)  # noqa: F841 (held until fit returns: one trainer per checkpoint)
    # automatic mixed precision (AMP): on CUDA by default; the CPU path below stays exactly the fp32 one
    amp = cfg.get("amp", "auto")
    use_amp = device.type == "cuda" if amp == "auto" else bool(amp)
    scaler = torch.amp.GradScaler(device.type) if use_amp else None
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    forward = Forward(model, cfg, device, min_steps(cfg, len(train_ds)), (cfg["batch_size"], cfg["eval_batch_size"]))
    log.info("speed settings: compile %s, channels_last %s", forward.compiled is not None, forward.channels_last)
    state = ckpt.load(checkpoint_path, run_hash)
    if state is None:
        torch.manual_seed(seed)
        state = {"config_hash": run_hash, "stage": 0, "epoch": 0, "step": 0, "t": 0, "loss_sum": 0.0, "n_seen": 0,
                 "history": [], "best_val": math.inf, "best_model": None, "bad_epochs": 0, "stage_started": False,
                 "optimizer": None, "model": None, "train_seconds": 0.0}
    else:
        log.warning("resuming %s at stage %d epoch %d step %d", checkpoint_path, state["stage"], state["epoch"],
                    state["step"])
        model.load_state_dict(state["model"])
        torch.set_rng_state(state["rng_torch"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
    stages = cfg["stages"]
    started = time.monotonic() - state["train_seconds"]

    def save_state():
        state["model"] = model.state_dict()
        state["optimizer"] = opt.state_dict()
        state["rng_torch"] = torch.get_rng_state()
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        if device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(device)
        state["train_seconds"] = time.monotonic() - started
        ckpt.save(checkpoint_path, state)
        timer.reset()

    while state["stage"] < len(stages):
        stage = {"lr": cfg["lr"], "patience": None, **stages[state["stage"]]}
        opt = _optimizer(model, cfg, stage["lr"])
        if state["stage_started"]:
            opt.load_state_dict(state["optimizer"])
        else:
            if cfg["reload_best"] and state["best_model"] is not None:
                model.load_state_dict(state["best_model"])
            state.update(stage_started=True, t=0, bad_epochs=0)
        while state["epoch"] < stage["epochs"]:
            batches = _batches(len(train_ds), cfg["batch_size"], seed, state["stage"], state["epoch"])
            model.train()
            bar = tqdm(total=len(batches), initial=state["step"], disable=not progress, leave=False,
                       desc=f"stage {state['stage']} epoch {state['epoch']}")
            for x, y in _loader(train_ds, batches[state["step"]:], cfg["num_workers"]):
                lr = stage["lr"] / (1.0 + cfg["decay"] * state["t"])
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.zero_grad(set_to_none=True)
                if scaler is None:
                    loss = crit(forward(x.to(device)), y.to(device))
                    loss.backward()
                    opt.step()
                else:
                    with torch.autocast(device.type, dtype=amp_dtype):
                        loss = crit(forward(x.to(device)), y.to(device))
                    scaler.scale(loss).backward()
                    scaler.step(opt)  # skipped when the scaled gradients overflowed
                    scaler.update()
                state["loss_sum"] += float(loss.detach()) * len(x)
                state["n_seen"] += len(x)
                state["step"] += 1
                state["t"] += 1
                bar.update(1)
                if timer.due():
                    save_state()
                    if timer.stop_requested:
                        raise Interrupted()
            bar.close()
            row = {"stage": state["stage"], "epoch": state["epoch"], "lr": stage["lr"],
                   "train_loss": state["loss_sum"] / max(state["n_seen"], 1)}
            if val_ds is not None:
                row["val_loss"] = mean_loss(model, val_ds, task, device, cfg["eval_batch_size"], cfg["num_workers"],
                                            forward)
                if row["val_loss"] < state["best_val"]:
                    state.update(best_val=row["val_loss"], bad_epochs=0,
                                 best_model=copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()}))
                else:
                    state["bad_epochs"] += 1
            state["history"].append(row)
            log.info("%s", row)
            state.update(epoch=state["epoch"] + 1, step=0, loss_sum=0.0, n_seen=0)
            # Keras EarlyStopping: stop after `patience` epochs in a row without a better validation loss
            stop = stage["patience"] is not None and state["bad_epochs"] >= stage["patience"]
            if stop:
                state["epoch"] = stage["epochs"]
            save_state()
        state.update(stage=state["stage"] + 1, epoch=0, stage_started=False)
        save_state()
    if val_ds is not None and state["best_model"] is not None:
        model.load_state_dict(state["best_model"])
    model.train_seconds = state["train_seconds"]
    return model, state["history"]


@torch.no_grad()
def predict(model, ds, n_clips: int, task: str, device, batch_size=64, num_workers=0, speed=None) -> np.ndarray:
    """Clip-level probabilities (n_clips, n_classes): the mean of the segment probabilities of each clip.

    speed: the compile / channels_last / retain_memory settings (DEFAULTS when None)."""
    model.eval()
    speed = {**DEFAULTS, **(speed or {})}
    forward = Forward(model, speed, torch.device(device), -(-len(ds) // batch_size), (batch_size,))
    out_sum, count = None, np.zeros(n_clips)
    for start in range(0, len(ds), batch_size):
        items = [ds[i] for i in range(start, min(start + batch_size, len(ds)))]
        x = torch.stack([it["x"] for it in items]).to(device)
        logits = forward(x)
        p = (torch.softmax(logits, -1) if task in ("multiclass", "multimodal") else torch.sigmoid(logits)).cpu()
        if out_sum is None:
            out_sum = np.zeros((n_clips, p.shape[1]))
        clips = np.array([int(it["clip"]) for it in items])
        np.add.at(out_sum, clips, p.numpy().astype(np.float64))
        np.add.at(count, clips, 1)
    return out_sum / np.maximum(count, 1)[:, None]
