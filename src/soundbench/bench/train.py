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


def _build(case: Case, device) -> torch.nn.Module:
    system = systems.get(case.system)
    return system.build(case.n_classes, tasks.get(case.task), {"x": case.shape},
                        **{**system.params, **case.params}).to(device)


def _batch(case: Case, batch: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *case.shape, generator=g)
    if case.task == "multiclass":
        y = torch.randint(0, case.n_classes, (batch,), generator=g)
    else:
        y = (torch.rand(batch, case.n_classes, generator=g) < 0.2).float()
    return x.to(device), y.to(device)


def _loss(case: Case, model, outputs, y: torch.Tensor) -> torch.Tensor:
    """The system's loss hook where it has one, else the task's loss on the predicted output."""
    system = systems.get(case.system)
    outputs = outputs if isinstance(outputs, dict) else {system.predict_key: outputs}
    if system.loss is not None:
        ctx = loop.LossContext(0, 0, {**system.params, **case.params}, None, system.predict_key, model)
        return system.loss(outputs, {"y": y}, ctx)
    return tasks.get(case.task).loss(outputs[system.predict_key], {"y": y})


def step_flops(case: Case, batch: int) -> int:
    """FLOPs of forward + backward on one batch, counted on the meta device (shapes only, no arithmetic)."""
    x, y = (t.to("meta") for t in _batch(case, batch, "cpu"))
    with torch.device("meta"):
        model = _build(case, "meta").train()
    with FlopCounterMode(display=False) as counter:
        _loss(case, model, model(x), y).backward()
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
    x, y = _batch(case, batch, device)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        out = forward(x) if mode == "plain eager" else forward({"x": x})
        loss = _loss(case, model, out, y)
        loss.backward()
        opt.step()
        _sync(device)
        return float(loss.detach())

    return step


def _cache_misses() -> int:
    from torch._dynamo.utils import counters

    return counters["inductor"]["fxgraph_cache_miss"]


def case_rows(case: Case, device: torch.device, quick: bool) -> list[dict]:
    batch = systems.get(case.system).train["batch_size"]
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
        row = {"system": case.system, "config": case.config, "input": "x".join(map(str, case.shape)),
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
        ("loss_diff", "|loss - plain|"), ("default", "default")]))
    print(f"(compile s: the first step's extra time, from inductor's on-disk cache or cold; break-even: steps "
          f"until it pays against compile: false; default: what compile: auto picks in a run of >= "
          f"{loop.COMPILE_MIN_STEPS} steps)")
    if quick:
        print("(--quick: small inputs for the tests; the goals speak of the full run)")
    print(report.goals_text(goals))
    return {"quick": quick, "rows": rows, "goals": goals, "matmul_peak_gflops": peaks["cpu"]["gflops"],
            "matmul_peaks": peaks, "threads": torch.get_num_threads(), "compile_min_steps": loop.COMPILE_MIN_STEPS}
