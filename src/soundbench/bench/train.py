"""`soundbench bench train`: samples/s of each system's training step, and its FLOP/s against a matmul peak.

One training step (forward, loss, backward and the system's own optimiser step from its train defaults) on a
fixed batch, timed in each mode of the training loop (median of repeats):
  plain eager     PyTorch as it comes: the reference of issue 5
  compile: false  the loop's eager mode: channels-last 2-D convolutions, freed memory retained (retain_memory)
  compile: true   the same under torch.compile; its one-off compile seconds are reported apart
The loss is the system's own where it has one (SubSpectralNet: the n + 1 cross-entropies), else the task's.
FLOPs per step (forward + backward convolutions and matmuls; the optimiser's elementwise work is not counted)
come from torch.utils.flop_counter on the meta device; achieved GFLOP/s are set against the fp32 matmul peak
measured in the same process with the same threads. The sklearn baseline has no training step.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from soundbench import systems, tasks
from soundbench.bench import report
from soundbench.training import loop

PEAK_GOAL = 30.0  # % of the matmul peak, every system's best mode
MODES = ("plain eager", "compile: false", "compile: true")


@dataclass(frozen=True)
class Case:
    system: str
    config: str
    params: dict
    shape: tuple[int, ...]  # one example
    task: str
    n_classes: int
    compile: bool = True  # time the compile: true mode too
    # named inputs ((name, shape, dtype), ...) of a multimodal system instead of the one float input "x" (shape);
    # the batch then also carries "group" (two examples per video, so the triplet losses find positives)
    inputs: tuple = ()
    teacher: str | None = None  # a frozen teacher system built on the same inputs (LossContext.teacher)
    batch: int | None = None  # None: the system's training batch

    def shapes(self) -> dict:
        return {n: tuple(sh) for n, sh, _ in self.inputs} if self.inputs else {"x": self.shape}


SENOT_CONFIG, NO_MODULES = "resnet18, paper input", ", no modules"
ACIVW_SHAPES = {"audio": (1, 257, 200), "aimage": (24, 36, 48, 12), "video": (2, 224, 298, 3)}

# Which inputs represent the real runs: SmallCNN on Speech Commands' 1-s log-mel (the loader bench's case) and on
# MagnaTagATune's 29-s clips (most of the reference systems' frames); SampleCNN on MTT's 59,049-sample segments,
# the longest input and a third of the paper grid, as basic/single (the plainest) and SE/multi (the paper's
# headline). The 22,050-sample variants have the same layers on shorter maps. Compiles are slow (a cold one
# 20-50 s), so SmallCNN's second input, where compile is no better either, is timed eagerly only.
FULL = [
    Case("smallcnn", "speech_commands", {}, (1, 40, 63), "multiclass", 35),
    Case("smallcnn", "mtt 29 s", {}, (1, 40, 1813), "multilabel", 50, compile=False),
    Case("samplecnn", "basic, single", {"block": "basic", "multi": False}, (1, 59049), "multilabel", 50),
    Case("samplecnn", "se, multi", {"block": "se", "multi": True}, (1, 59049), "multilabel", 50),
    # SubSpectralNet's README configuration: L and R x 40 mels x 500 frames, 3 bands (its 2-D convolutions run best
    # channels-last and eager, so no compile)
    Case("subspectralnet", "40.20.10", {}, (2, 40, 500), "multiclass", 10, compile=False),
    # the SED CRNN as the paper trains it: GLU, the Keras-style GRU (a loop over the 431 frames of a 10-s clip,
    # which a compile would unroll), the MIL loss with the cosine penalty
    Case("sed_crnn", "GLU, Keras GRU, 10 s", {}, (1, 64, 431), "sed", 10, compile=False),
    # SeNoT-Net as the paper trains it: 8 segments x 128 mels x 80 frames, batch 16, ResNet-18 with and without
    # its 4 SeNoT modules (the pair gives the modules' share of the step); eager only (a step takes seconds
    # on the CPU, and its compile minutes)
    Case("senot", SENOT_CONFIG, {}, (3, 8, 128, 80), "multiclass", 10, compile=False),
    Case("senot", SENOT_CONFIG + NO_MODULES, {"modules": False}, (3, 8, 128, 80), "multiclass", 10, compile=False),
    # the acoustic-image SSL systems at the paper's inputs (ACIVW, 2-s samples): supervised heads per modality
    # (batch 32) and the self-supervised / distillation stages (the video trunk on 2 frames of 224 x 298
    # dominates: batch 8 instead of 64, whose step takes about a minute on 2 cores); eager only (Conv1d / Conv3d
    # networks and seconds-long steps)
    Case("hearnet", "paper", {}, ACIVW_SHAPES["audio"], "multiclass", 10, compile=False),
    Case("dualcamnet", "paper", {}, ACIVW_SHAPES["aimage"], "multiclass", 10, compile=False),
    Case("resnet18_video", "paper, 2 frames", {}, ACIVW_SHAPES["video"], "multiclass", 10, compile=False,
         inputs=(("x", ACIVW_SHAPES["video"], "uint8"),)),
    Case("ssl_audio_video", "paper, batch 8", {}, (), "embedding", 10, compile=False, batch=8,
         inputs=(("audio", ACIVW_SHAPES["audio"], "float32"), ("video", ACIVW_SHAPES["video"], "uint8"))),
    Case("ssl_aimage_video", "paper, batch 8", {}, (), "embedding", 10, compile=False, batch=8,
         inputs=(("aimage", ACIVW_SHAPES["aimage"], "float32"), ("video", ACIVW_SHAPES["video"], "uint8"))),
    Case("distill_audio", "paper, alpha 0.5, batch 8", {}, (), "embedding", 10, compile=False, batch=8,
         inputs=(("audio", ACIVW_SHAPES["audio"], "float32"), ("video", ACIVW_SHAPES["video"], "uint8"),
                 ("aimage", ACIVW_SHAPES["aimage"], "float32")), teacher="ssl_aimage_video"),
]
# --quick (tests): one compile only, of a 4-block SampleCNN (a cold compile costs ~25 s even that small)
QUICK = [
    Case("smallcnn", "speech_commands", {}, (1, 40, 63), "multiclass", 35, compile=False),
    Case("samplecnn", "basic, multi, width 16", {"block": "basic", "multi": True, "init_features": 16}, (1, 243),
         "multilabel", 10),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, quick: bool) -> dict:
    """The best fp32 GFLOP/s of a square matmul over a few sizes (median of repeats per size), into a preallocated
    output (a fresh one would add page faults to the arithmetic)."""
    best = {"gflops": 0.0, "n": 0}
    for n in (1024, 2048) if quick else (1024, 2048, 3072):
        a, b, out = (torch.randn(n, n, device=device) for _ in range(3))

        def mm():
            torch.mm(a, b, out=out)
            _sync(device)

        gflops = 2 * n ** 3 / report.best(report.timings(mm, repeat=3 if quick else 7)) / 1e9
        if gflops > best["gflops"]:
            best = {"gflops": gflops, "n": n}
    return best


def _build(case: Case, device, system_name: str | None = None) -> torch.nn.Module:
    system = systems.get(system_name or case.system)
    # a teacher takes the case's settings that it declares too (its narrow demo widths, say)
    params = {**system.params, **{k: v for k, v in case.params.items() if k in system.params}}
    shapes = case.shapes()
    if system_name is not None:  # a teacher: the inputs its build asks for
        shapes = {k: v for k, v in shapes.items() if k in system.input_shapes(params)}
    return system.build(case.n_classes, tasks.get(case.task), shapes, **params).to(device)


def _batch(case: Case, batch: int, device) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """({input name: tensor}, targets {"y"[, "group"]}) of one fixed batch."""
    g = torch.Generator().manual_seed(0)
    inputs = {}
    for name, shape, dtype in case.inputs or (("x", case.shape, "float32"),):
        inputs[name] = torch.randint(0, 256, (batch, *shape), generator=g, dtype=torch.uint8) \
            if dtype == "uint8" else torch.randn(batch, *shape, generator=g)
    if case.task in ("multiclass", "embedding"):  # class ids (embedding: the triplets' classes)
        y = torch.randint(0, case.n_classes, (batch,), generator=g)
    else:  # multilabel, sed: multi-hot tags
        y = (torch.rand(batch, case.n_classes, generator=g) < 0.2).float()
    targets = {"y": y, "group": torch.arange(batch) // 2} if case.inputs else {"y": y}
    if case.inputs:
        targets["y"] = targets["y"][targets["group"]]  # the two examples of a video share its class
    return {k: v.to(device) for k, v in inputs.items()}, {k: v.to(device) for k, v in targets.items()}


def _loss(case: Case, model, outputs, targets: dict, inputs: dict | None = None, teacher=None) -> torch.Tensor:
    """The system's loss hook where it has one, else the task's loss on the predicted output."""
    system = systems.get(case.system)
    outputs = outputs if isinstance(outputs, dict) else {system.predict_key: outputs}
    if system.loss is not None:
        ctx = loop.LossContext(0, 0, {**system.params, **case.params}, teacher, system.predict_key, model)
        return system.loss(outputs, {**targets, "inputs": inputs or {}}, ctx)
    return tasks.get(case.task).loss(outputs[system.predict_key], targets)


def _teacher(case: Case, device):
    if case.teacher is None:
        return None
    t = _build(case, device, case.teacher).eval()
    for p in t.parameters():
        p.requires_grad_(False)
    return t


def step_flops(case: Case, batch: int) -> int:
    """FLOPs of forward + backward on one batch, counted on the meta device (shapes only, no arithmetic)."""
    inputs, targets = _batch(case, batch, "meta")
    with torch.device("meta"):
        model = _build(case, "meta").train()
        teacher = _teacher(case, "meta")
    with FlopCounterMode(display=False) as counter:
        _loss(case, model, model(**inputs), targets, inputs, teacher).backward()
    return counter.get_total_flops()


def _stepper(case: Case, model, mode: str, device, batch: int):
    """step() -> loss of one training step in `mode`, as loop.fit runs it."""
    cfg = {**loop.DEFAULTS, **systems.get(case.system).train}
    if mode == "plain eager":
        loop.retain_memory(False)
        forward = model
    else:
        speed = {"compile": mode == "compile: true", "channels_last": True, "retain_memory": True}
        forward = loop.Forward(model, speed, device, 0, (batch,), predict_key=systems.get(case.system).predict_key)
    opt = loop.make_optimizer(model, cfg, cfg["stages"][0].get("lr", cfg["lr"]))
    inputs, targets = _batch(case, batch, device)  # a distillation batch also carries the teacher's input
    teacher = _teacher(case, device)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        out = forward(**inputs) if mode == "plain eager" else forward(inputs)
        loss = _loss(case, model, out, targets, inputs, teacher)
        loss.backward()
        opt.step()
        _sync(device)
        return float(loss.detach())

    return step


def _cache_misses() -> int:
    from torch._dynamo.utils import counters

    return counters["inductor"]["fxgraph_cache_miss"]


def case_rows(case: Case, device: torch.device, quick: bool) -> list[dict]:
    batch = case.batch or systems.get(case.system).train["batch_size"]
    torch.manual_seed(0)
    base = _build(case, device).train()
    flops = step_flops(case, batch)
    rows = []
    for mode in MODES if case.compile else MODES[:2]:
        step = _stepper(case, copy.deepcopy(base), mode, device, batch)
        torch.manual_seed(1)  # the same dropout masks in every mode
        misses, t0 = _cache_misses(), time.perf_counter()
        loss = step()  # the first step, also the warm-up: same weights and batch in every mode; compiles
        first = time.perf_counter() - t0
        # fast steps are repeated for 0.5 s, so that a scheduler tick does not decide the median; plain eager,
        # the slowest, twice only (the bench's time budget)
        repeat = 2 if quick or mode == "plain eager" else 3
        seconds = report.best(report.timings(step, repeat=repeat, warmup=0, min_seconds=0.5))
        shape = " + ".join("x".join(map(str, sh)) for sh in case.shapes().values())
        row = {"system": case.system, "config": case.config, "input": shape,
               "batch": batch, "device": str(device), "mode": mode, "step_ms": 1e3 * seconds,
               "samples_per_s": batch / seconds, "gflop_per_step": flops / 1e9, "gflops": flops / seconds / 1e9,
               "first_loss": loss}
        if mode == "compile: true":
            row["compile_s"] = max(first - seconds, 0.0)
            row["compile_cache"] = "cold" if _cache_misses() > misses else "cached"
        rows.append(row)
    for row in rows:
        row["speedup"] = rows[0]["step_ms"] / row["step_ms"]
        row["loss_diff"] = abs(row["first_loss"] - rows[0]["first_loss"])
    if case.compile:
        tuned, compiled = rows[1:]
        saved = (tuned["step_ms"] - compiled["step_ms"]) / 1e3
        compiled["break_even_steps"] = compiled["compile_s"] / saved if saved > 0 else None
    # the mode `compile: auto` takes in a real run (thousands of steps)
    auto = "compile: true" if loop.use_compile("auto", base, loop.COMPILE_MIN_STEPS) else "compile: false"
    for row in rows:
        row["default"] = row["mode"] == auto
    return rows


def module_shares(rows: list[dict]) -> None:
    """SeNoT-Net rows gain `module_share`: 1 - (step without the modules) / (step with them), the same trunk,
    input, mode and device (the configs "<config>" and "<config>, no modules")."""
    plain = {(r["device"], r["mode"], r["config"][:-len(NO_MODULES)]): r["step_ms"] for r in rows
             if r["system"] == "senot" and r["config"].endswith(NO_MODULES)}
    for r in rows:
        key = (r.get("device"), r.get("mode"), r.get("config"))
        if r["system"] == "senot" and key in plain:
            r["module_share"] = 1.0 - plain[key] / r["step_ms"]


def run(quick: bool = False, out_dir=None) -> dict:
    """The table and goals printed; the JSON payload returned (out_dir: unused, the CLI writes the record)."""
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows, peaks, goals = [], {}, []
    for device in devices:
        before = matmul_peak(device, quick)
        device_rows = [r for case in (QUICK if quick else FULL) for r in case_rows(case, device, quick)]
        after = matmul_peak(device, quick)
        # the higher of the two: a co-tenant slowing one of them down must not flatter the % of peak
        peak = max(before, after, key=lambda p: p["gflops"])
        peaks[str(device)] = {**peak, "before": before["gflops"], "after": after["gflops"]}
        for row in device_rows:
            row["pct_peak"] = 100.0 * row["gflops"] / peak["gflops"]
        rows += device_rows
        for config in dict.fromkeys((r["system"], r["config"]) for r in device_rows):
            best = max((r for r in device_rows if (r["system"], r["config"]) == config), key=lambda r: r["gflops"])
            goals.append(report.goal(f"{device} {config[0]} {config[1]}: best mode ({best['mode']}) % of matmul "
                                     f"peak", best["pct_peak"], PEAK_GOAL, unit="%"))
    module_shares(rows)
    rows.append({"system": "baseline", "config": "sklearn logistic regression", "device": "cpu",
                 "mode": "n/a: fit once on pooled features, no training step", "samples_per_s": None})
    title = "Training step: forward + loss + backward + optimiser step on one batch (median of repeats); " + \
        ", ".join(f"{d} fp32 matmul peak {p['gflops']:.0f} GFLOP/s (n={p['n']})" for d, p in peaks.items())
    print(report.table(title, rows, [
        ("system", "system"), ("config", "config"), ("input", "input"), ("batch", "batch"), ("device", "device"),
        ("mode", "mode"), ("step_ms", "step ms"), ("samples_per_s", "samples/s"),
        ("gflop_per_step", "GFLOP/step"), ("gflops", "GFLOP/s"), ("pct_peak", "% peak"),
        ("speedup", "x plain"), ("compile_s", "compile s"), ("compile_cache", "cache"),
        ("break_even_steps", "break-even steps"),
        ("loss_diff", "|loss - plain|"), ("module_share", "SeNoT modules' share"), ("default", "default")]))
    print(f"(compile s: the first step's extra time, from inductor's on-disk cache or cold; break-even: steps "
          f"until it pays against compile: false; default: what compile: auto picks in a run of >= "
          f"{loop.COMPILE_MIN_STEPS} steps)")
    if quick:
        print("(--quick: small inputs for the tests; the goals speak of the full run)")
    print(report.goals_text(goals))
    return {"quick": quick, "rows": rows, "goals": goals, "matmul_peak_gflops": peaks["cpu"]["gflops"],
            "matmul_peaks": peaks, "threads": torch.get_num_threads(), "compile_min_steps": loop.COMPILE_MIN_STEPS}
