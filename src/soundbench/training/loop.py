"""The one training loop: staged schedules, model selection, early stopping, exact resume from any step.

Config (an experiment's `train:` merged over the system's defaults; every key is checked by the config schema):
  optimizer: adam | sgd | rmsprop   lr, momentum and nesterov (sgd), rho (rmsprop's squared-gradient average;
       Keras 0.9), eps (adam, rmsprop; None: torch's 1e-8, Keras uses 1e-7), weight_decay (0: the originals
       never applied it)
  decay: Keras time-based decay per iteration, lr_t = lr / (1 + decay * t), t reset at each stage
  batch_size, eval_batch_size, num_workers, drop_last (false: a last batch of one joins the previous batch;
       true: the last incomplete batch is dropped, as SeNoT-Net's loader)
  shuffle: permutation (a new permutation of all examples every epoch) | buffer (tf.data's shuffle buffer of
       `shuffle_buffer` examples over a stream of whole clips, each clip's segments next to each other, the clips
       in an order drawn once per run: SampleCNN's pipeline reads TFRecord shards of shuffled clips in a fixed
       order, so a batch often holds several segments of one clip)
  stages: [{epochs, lr (default: lr), patience (None: no early stopping), reset_optimizer (default true: each
       stage starts a fresh optimiser, as SampleCNN recompiles; false keeps its state, a plain lr schedule)}]
  select_on: validation | test | last   the split the model is selected on (test: the originals' test-set
       selection; last: no selection, the last epoch's weights)
  train_on: the manifest splits trained on (default [train]; [train, validation]: a dataset whose manifest
       carves a validation split still trains on all of its official training fold, as an original that selects
       on the test set did; the normalisation statistics come from the same clips)
  select_metric: loss (default, lowest) | a metric of the task (accuracy, roc_auc_macro, ...; highest, or lowest
       for error rates)
  select_scope: run (one best over the whole run) | stage (the best restarts at every stage, as Keras callbacks
       built anew per stage: the first epoch of a stage is its first best; the final model is the last stage's)
  reload_best: at the end of a stage continue from the selected weights (SampleCNN)
  bn_momentum: None | {start, factor, every_epochs, max_decay}: BatchNorm moving-average decay
       min(max_decay, 1 - start * factor ** floor(epochs_done / every_epochs)), counted in steps (SeNoT-Net)
  normalize: see training/data.py fit_normalizer (per input with {input: how})
  checkpoint_minutes: periodic checkpoint interval (also written at every epoch end and on SIGTERM/SIGUSR1)
  amp: auto (default: mixed precision, float16 autocast + GradScaler, on CUDA only) | true (also on CPU, bfloat16)
       | false; the scaler's state is part of the checkpoint
  compile: auto (default: torch.compile when the schedule runs >= COMPILE_MIN_STEPS steps and the model has no
       2-D convolution, which channels-last eager already serves best) | true | false (eager)
  channels_last: true (default: 2-D convolutions and their inputs in channels-last memory format) | false
  retain_memory: true (default: the CPU process keeps freed memory instead of page-faulting it back every step)
       | false; none of these three changes the arithmetic, only its rounding (compile, channels_last)

A batch is a dict ({"inputs": {name: tensor}, "y": ..., other targets}); the model is called with the inputs as
keyword arguments. The system's hooks (soundbench/systems.py) replace the task's loss and augment training
batches.

Determinism: the batch order of (stage, epoch) and the augmentation RNG of a step are functions of the seed alone,
and a checkpoint stores the position inside the epoch plus every RNG state, so a resumed run replays exactly what
an uninterrupted one does.
"""
from __future__ import annotations

import copy
import ctypes
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from soundbench import tasks
from soundbench.training import checkpoint as ckpt

log = logging.getLogger("soundbench.train")

DEFAULTS = {"optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "nesterov": False, "rho": 0.9, "eps": None,
            "weight_decay": 0.0, "decay": 0.0, "batch_size": 32, "eval_batch_size": 64, "num_workers": 0,
            "drop_last": False, "shuffle": "permutation", "shuffle_buffer": 10000, "stages": [{"epochs": 10}],
            "select_on": "validation", "select_metric": "loss", "train_on": ["train"],
            "select_scope": "run", "reload_best": False, "bn_momentum": None, "checkpoint_minutes": 10.0,
            "normalize": "none", "amp": "auto", "compile": "auto", "channels_last": True, "retain_memory": True}
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

    def __init__(self, model: nn.Module, cfg: dict, device: torch.device, n_calls: int, batch_sizes=(),
                 predict_key: str = "logits"):
        self.model = model
        self.predict_key = predict_key
        self.channels_last = bool(cfg.get("channels_last", True)) and _has(model, nn.Conv2d)
        if self.channels_last:
            # leaf by leaf: Module.to(memory_format) fails on a model that also holds 5-D (Conv3d) weights
            for m in model.modules():
                tensors = [*m.parameters(recurse=False), *m.buffers(recurse=False)]
                if not list(m.children()) and all(t.dim() != 5 for t in tensors):
                    m.to(memory_format=torch.channels_last)
        if cfg.get("retain_memory", True) and device.type == "cpu":
            retain_memory()
        self.compiled = None
        if use_compile(cfg.get("compile", "auto"), model, n_calls):
            self.compiled = torch.compile(model, dynamic=False, options={"fallback_random": True})
        self.batch_sizes = set(batch_sizes)

    def __call__(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The model's outputs as a dict (a plain tensor becomes {predict_key: tensor})."""
        if self.channels_last:
            inputs = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                      for k, v in inputs.items()}
        batch = next(iter(inputs.values())).shape[0]
        fn = self.compiled if self.compiled is not None and batch in self.batch_sizes else self.model
        out = fn(**inputs)
        return out if isinstance(out, dict) else {self.predict_key: out}


@dataclass
class LossContext:
    """What a system's loss may use besides the outputs and the batch."""

    epoch: int  # global epoch, counted over all stages (a loss that changes with the epoch reads this)
    stage: int
    params: dict = field(default_factory=dict)
    teacher: nn.Module | None = None  # a frozen model (`teacher:` experiment), in eval mode
    predict_key: str = "logits"
    model: nn.Module | None = None  # the model being trained (weight penalties, as Keras regularisers)


@dataclass
class Hooks:
    """The system's hooks the loop calls (systems.py); the defaults are the task's behaviour."""

    loss: Callable | None = None
    augment: Callable | None = None
    predict_key: str = "logits"
    params: dict = field(default_factory=dict)
    teacher: nn.Module | None = None

    @classmethod
    def of(cls, system, params: dict, teacher: nn.Module | None = None) -> "Hooks":
        return cls(system.loss, system.augment, system.predict_key, params, teacher)


def compute_loss(task, hooks: Hooks, outputs: dict, batch: dict, ctx: LossContext) -> torch.Tensor:
    if hooks.loss is not None:
        return hooks.loss(outputs, batch, ctx)
    return task.loss(outputs[hooks.predict_key], batch)


def autocast_dtype(cfg: dict, device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype of training under cfg's `amp`, or None for plain float32."""
    amp = cfg.get("amp", "auto")
    if not (device.type == "cuda" if amp == "auto" else bool(amp)):
        return None
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def precision(cfg: dict, device: torch.device) -> str:
    """How training computed: "float32", or "float16 autocast" / "bfloat16 autocast" (the table's column)."""
    dtype = autocast_dtype(cfg, device)
    return "float32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"


def min_steps(cfg: dict, n_train: int) -> int:
    """The fewest training steps the schedule can take (early stopping after `patience` epochs at the earliest)."""
    epochs = sum(max(1, min(s["epochs"], s["epochs"] if s.get("patience") is None else s["patience"]))
                 for s in cfg["stages"])
    return epochs * max(1, n_train // cfg["batch_size"])


def make_optimizer(model: nn.Module, cfg: dict, lr: float) -> torch.optim.Optimizer:
    eps = {} if cfg.get("eps") is None else {"eps": cfg["eps"]}
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg["momentum"], nesterov=cfg["nesterov"],
                               weight_decay=cfg["weight_decay"])
    if cfg["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg["weight_decay"], **eps)
    if cfg["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=cfg["rho"], weight_decay=cfg["weight_decay"], **eps)
    raise ValueError(f"train.optimizer: unknown optimizer {cfg['optimizer']!r} (adam | sgd | rmsprop)")


def buffer_order(n: int, buffer_size: int, rng: np.random.Generator) -> np.ndarray:
    """tf.data's shuffle: examples enter a buffer in stored order; each output is a uniformly drawn buffer slot,
    refilled with the next example (at the end the buffer drains in random order)."""
    draws = rng.random(n)
    buf = list(range(min(buffer_size, n)))
    nxt, out = len(buf), np.empty(n, dtype=np.int64)
    for i in range(n):
        j = int(draws[i] * len(buf))
        out[i] = buf[j]
        if nxt < n:
            buf[j], nxt = nxt, nxt + 1
        else:
            buf[j] = buf[-1]
            buf.pop()
    return out


def clip_stream(per_clip: np.ndarray, seed: int) -> np.ndarray:
    """Example indices as a stream of whole clips (a clip's examples are stored consecutively), the clips in an
    order drawn once from the seed."""
    starts = np.concatenate([[0], np.cumsum(per_clip)[:-1]])
    order = np.random.default_rng([seed, 1]).permutation(len(per_clip))
    return np.concatenate([np.arange(starts[c], starts[c] + per_clip[c]) for c in order]) if len(order) else order


def epoch_batches(n: int, batch_size: int, seed: int, stage: int, epoch: int, drop_last: bool = False,
                  shuffle: str = "permutation", shuffle_buffer: int = 10000, per_clip: np.ndarray | None = None
                  ) -> list[np.ndarray]:
    """The example indices of each batch of one epoch, a function of (seed, stage, epoch) only: a resumed run
    replays the same order. per_clip: examples of each clip in stored order (the buffer's stream; None: one
    example per clip)."""
    rng = np.random.default_rng([seed, stage, epoch])
    if shuffle == "permutation":
        order = rng.permutation(n)
    elif shuffle == "buffer":
        stream = clip_stream(np.ones(n, dtype=np.int64) if per_clip is None else per_clip, seed)
        order = stream[buffer_order(n, shuffle_buffer, rng)]
    else:
        raise ValueError(f"train.shuffle: {shuffle!r} is not permutation or buffer")
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if drop_last:
        return [b for b in batches if len(b) == batch_size]
    if len(batches) > 1 and len(batches[-1]) == 1:
        # batch norm cannot train on one example (Keras can): the straggler joins the previous batch
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches


def collate(items: list[dict]) -> dict:
    """Stack a list of examples into a batch dict (nested "inputs" included)."""
    out = {"inputs": {k: torch.stack([it["inputs"][k] for it in items]) for k in items[0]["inputs"]}}
    for key in items[0]:
        if key != "inputs":
            out[key] = torch.stack([torch.as_tensor(it[key]) for it in items])
    return out


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: to_device(v, device) if isinstance(v, dict) else v.to(device) for k, v in batch.items()}


class _Batches(torch.utils.data.Dataset):
    """Whole batches as items, so DataLoader workers prefetch them while the model trains."""

    def __init__(self, ds, batches):
        self.ds, self.batches = ds, batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return collate([self.ds[int(j)] for j in self.batches[i]])


def batch_loader(ds, batches, num_workers: int):
    """A DataLoader over precomputed batches of example indices."""
    # an own generator: a DataLoader otherwise draws its base seed from the global RNG, which would shift the
    # dropout masks of a resumed run against an uninterrupted one
    return torch.utils.data.DataLoader(_Batches(ds, batches), batch_size=None, shuffle=False,
                                       num_workers=num_workers, generator=torch.Generator().manual_seed(0))


def _in_order(n: int, batch_size: int) -> list[np.ndarray]:
    return [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


@torch.no_grad()
def mean_loss(model, ds, task, device, batch_size=64, num_workers=0, forward=None, hooks: Hooks | None = None,
              ctx: LossContext | None = None) -> float:
    model.eval()
    hooks = hooks or Hooks()
    forward = forward or Forward(model, {"compile": False, "channels_last": False, "retain_memory": False},
                                 torch.device(device), 0, predict_key=hooks.predict_key)
    ctx = ctx or LossContext(0, 0, hooks.params, hooks.teacher, hooks.predict_key, model)
    total, n = 0.0, 0
    for batch in batch_loader(ds, _in_order(len(ds), batch_size), num_workers):
        batch = to_device(batch, device)
        k = len(batch["clip"])
        total += float(compute_loss(task, hooks, forward(batch["inputs"]), batch, ctx)) * k
        n += k
    return total / max(n, 1)


def _set_bn_momentum(model: nn.Module, schedule: dict, global_step: int, steps_per_epoch: int) -> None:
    every = max(1, int(round(schedule["every_epochs"] * steps_per_epoch)))
    decay = min(schedule["max_decay"], 1.0 - schedule["start"] * schedule["factor"] ** (global_step // every))
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            m.momentum = 1.0 - decay  # PyTorch's momentum is the weight of the new batch: 1 - TF's decay


def fit(model: nn.Module, train_ds, val_ds, task, cfg: dict, seed: int, checkpoint_path: Path,
        run_hash: str, device: torch.device, progress: bool = True, hooks: Hooks | None = None,
        val_score: Callable | None = None) -> tuple[nn.Module, list[dict]]:
    """Train `model`; returns (the selected model, history rows). Resumes from checkpoint_path when it holds a
    checkpoint of the same run_hash. val_score(model, forward) -> the validation value of cfg's select_metric
    (needed when it is not the loss)."""
    cfg = {**DEFAULTS, **cfg}
    task = tasks.get(task) if isinstance(task, str) else task
    hooks = hooks or Hooks()
    metric = cfg["select_metric"]
    if metric != "loss" and val_ds is not None and val_score is None:
        raise ValueError(f"train.select_metric: {metric!r} needs a validation scorer")
    sign = -1.0 if metric == "loss" or metric in task.lower_is_better else 1.0  # larger score = better
    model.to(device)
    timer = ckpt.Timer(cfg["checkpoint_minutes"])
    lock = ckpt.exclusive(checkpoint_path)  # noqa: F841 (held until fit returns: one trainer per checkpoint)
    # automatic mixed precision (AMP): on CUDA by default; the CPU path below stays exactly the fp32 one
    amp_dtype = autocast_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype is not None else None
    forward = Forward(model, cfg, device, min_steps(cfg, len(train_ds)), (cfg["batch_size"], cfg["eval_batch_size"]),
                      predict_key=hooks.predict_key)
    log.info("speed settings: compile %s, channels_last %s", forward.compiled is not None, forward.channels_last)
    state = ckpt.load(checkpoint_path, run_hash)
    if state is None:
        torch.manual_seed(seed)
        state = {"config_hash": run_hash, "stage": 0, "epoch": 0, "step": 0, "t": 0, "global_step": 0,
                 "global_epoch": 0, "loss_sum": 0.0, "n_seen": 0, "history": [], "best_score": -math.inf,
                 "best_model": None, "bad_epochs": 0, "stage_started": False, "optimizer": None, "model": None,
                 "train_seconds": 0.0}
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
    per_clip = train_ds.examples_per_clip() if hasattr(train_ds, "examples_per_clip") else None

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
        stage = {"lr": cfg["lr"], "patience": None, "reset_optimizer": True, **stages[state["stage"]]}
        opt = make_optimizer(model, cfg, stage["lr"])
        if state["stage_started"]:
            opt.load_state_dict(state["optimizer"])
        else:
            if cfg["reload_best"] and state["best_model"] is not None:
                model.load_state_dict(state["best_model"])
            if not stage["reset_optimizer"] and state["optimizer"] is not None:
                opt.load_state_dict(state["optimizer"])  # the previous stage's, saved at its end
            if cfg["select_scope"] == "stage":
                state.update(best_score=-math.inf, best_model=None)
            state.update(stage_started=True, t=0, bad_epochs=0)
        while state["epoch"] < stage["epochs"]:
            batches = epoch_batches(len(train_ds), cfg["batch_size"], seed, state["stage"], state["epoch"],
                                    cfg["drop_last"], cfg["shuffle"], cfg["shuffle_buffer"], per_clip)
            ctx = LossContext(state["global_epoch"], state["stage"], hooks.params, hooks.teacher, hooks.predict_key,
                              model)
            model.train()
            bar = tqdm(total=len(batches), initial=state["step"], disable=not progress, leave=False,
                       desc=f"stage {state['stage']} epoch {state['epoch']}")
            for batch in batch_loader(train_ds, batches[state["step"]:], cfg["num_workers"]):
                if hooks.augment is not None:
                    rng = np.random.default_rng([seed, state["stage"], state["epoch"], state["step"], 7])
                    batch = hooks.augment(batch, rng, hooks.params)
                if cfg["bn_momentum"]:
                    _set_bn_momentum(model, cfg["bn_momentum"], state["global_step"], len(batches))
                lr = stage["lr"] / (1.0 + cfg["decay"] * state["t"])
                for g in opt.param_groups:
                    g["lr"] = lr
                batch = to_device(batch, device)
                opt.zero_grad(set_to_none=True)
                if scaler is None:
                    loss = compute_loss(task, hooks, forward(batch["inputs"]), batch, ctx)
                    loss.backward()
                    opt.step()
                else:
                    with torch.autocast(device.type, dtype=amp_dtype):
                        loss = compute_loss(task, hooks, forward(batch["inputs"]), batch, ctx)
                    scaler.scale(loss).backward()
                    scaler.step(opt)  # skipped when the scaled gradients overflowed
                    scaler.update()
                k = len(batch["clip"])
                state["loss_sum"] += float(loss.detach()) * k
                state["n_seen"] += k
                state["step"] += 1
                state["t"] += 1
                state["global_step"] += 1
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
                                            forward, hooks, ctx)
                if metric != "loss":
                    row[f"val_{metric}"] = float(val_score(model, forward))
                score = sign * row["val_loss" if metric == "loss" else f"val_{metric}"]
                if score > state["best_score"]:
                    state.update(best_score=score, bad_epochs=0,
                                 best_model=copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()}))
                else:
                    state["bad_epochs"] += 1
            state["history"].append(row)
            log.info("%s", row)
            state.update(epoch=state["epoch"] + 1, global_epoch=state["global_epoch"] + 1, step=0, loss_sum=0.0,
                         n_seen=0)
            # Keras EarlyStopping: stop after `patience` epochs in a row without a better validation value
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
def predict(model, ds, n_clips: int, task, device, batch_size=64, num_workers=0, speed=None,
            predict_key: str = "logits", forward=None, extra: dict | None = None
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """(clip scores (n_clips, K): the mean over each clip's examples, frame scores (n_clips, T, C) or None).

    speed: the compile / channels_last / retain_memory settings (DEFAULTS when None). extra: {output name: None}
    of other outputs to predict in the same pass (a multimodal model's other embeddings); filled with their clip
    means (n_clips, dim)."""
    model.eval()
    task = tasks.get(task) if isinstance(task, str) else task
    speed = {**DEFAULTS, **(speed or {})}
    device = torch.device(device)
    forward = forward or Forward(model, speed, device, -(-len(ds) // batch_size), (batch_size,),
                                 predict_key=predict_key)
    clip_sum, frames, count = None, None, np.zeros(n_clips)
    extra_sum = {}
    for batch in batch_loader(ds, _in_order(len(ds), batch_size), num_workers):
        outputs = forward(to_device(batch["inputs"], device))
        scores = task.activate(outputs[predict_key])
        clip = task.clip_scores(scores).double().cpu().numpy()
        clips = batch["clip"].numpy()
        for name in extra or {}:
            if name not in outputs:
                raise ValueError(f"the model has no output {name!r} (outputs: {sorted(outputs)})")
            value = outputs[name].double().cpu().numpy()
            np.add.at(extra_sum.setdefault(name, np.zeros((n_clips, value.shape[1]))), clips, value)
        if clip_sum is None:
            clip_sum = np.zeros((n_clips, clip.shape[1]))
        np.add.at(clip_sum, clips, clip)
        np.add.at(count, clips, 1)
        fr = task.frame_scores(scores)
        if fr is not None:
            if frames is None:
                frames = np.zeros((n_clips, *fr.shape[1:]), dtype=np.float32)
            frames[clips] = fr.float().cpu().numpy()
    if frames is not None and (count > 1).any():
        raise ValueError("frame-level predictions need one example per clip (no Segments view)")
    for name, total in extra_sum.items():
        extra[name] = total / np.maximum(count, 1)[:, None]
    return clip_sum / np.maximum(count, 1)[:, None], frames
