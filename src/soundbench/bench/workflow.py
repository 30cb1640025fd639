"""`soundbench bench workflow`: how fast Snakemake plans the paper config, what a job costs beyond its own work,
and how feature extraction scales from --cores 1 to --cores 2.

Every run is `python -m snakemake -s <checkout>/Snakefile -d <temporary directory>`; results/ is never touched.

- dry-run: `snakemake -n` of workflow/experiments/paper.yaml in an empty directory (every job planned).
- speedup: one demo dataset is prepared first (demo -> fetch -> unpack -> manifest, --cores 2; timed, not part
  of the ratio), then the same feature shards are built with --cores 1 and, after deleting them, --cores 2.
- per-job overhead, measured: the --cores 1 build's wall W1, minus Snakemake's fixed start-up F (a rerun of the
  same targets with nothing to do), minus the same jobs' own work S (the shell commands Snakemake logged, run
  through `cli.main` in this process on one thread, imports already done), over its N jobs. It splits into the
  step's interpreter + import start-up (a fresh `python -c` of the imports of `cli.cmd_<step>`, timed) and the
  rest (Snakemake's scheduling, the shell, a new process's first calls); Snakemake's part alone is
  (W1 - F - the jobs' shell wall times from their `benchmark:` files) / N.
- demo share, derived: every job `snakemake -n` lists for config.yaml is charged the overhead measured for its
  rule (features) or that rest plus its own step's start-up (a job without a command, `all`, only Snakemake's
  part), summed, over the demo's wall time as `make run` measured it (README). The full demo takes ~6 min, more
  than this bench's budget, so it is not rerun here.
"""
from __future__ import annotations

import ast
import contextlib
import inspect
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

from soundbench import cli
from soundbench.bench import report

ROOT = Path(__file__).resolve().parents[3]
PAPER = ROOT / "workflow/experiments/paper.yaml"
DEMO = ROOT / "config.yaml"
DEMO_WALL_S = 301.0  # README "What the demo gives": `make run`, 97 jobs, 2 cores (after the speed work of issue 5)
DATASET = "speech_commands"  # the demo's quickest dataset to prepare (~10 s) with two feature specs
FEATURES = ("logmel16k", "wave22k")
STEP = {"demo_release": "demo"}  # rule -> `soundbench <step>` where the names differ
DRY_RUN_GOAL, OVERHEAD_GOAL, SPEEDUP_GOAL = 5.0, 5.0, 1.8


def snakemake(workdir: Path, config: Path, *args: str) -> tuple[float, str]:
    """(wall seconds, log) of `snakemake <args> --configfile config` in workdir; the log's tail on failure."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args,
           "--configfile", str(config)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    seconds = time.perf_counter() - t0
    if r.returncode:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{(r.stdout + r.stderr)[-3000:]}")
    return seconds, r.stdout + r.stderr


def job_counts(log: str) -> dict[str, int]:
    """{rule: jobs} of the first "Job stats" table of a Snakemake log (without its total)."""
    counts: dict[str, int] = {}
    table = log[log.index("Job stats:"):] if "Job stats:" in log else ""
    for line in table.splitlines()[1:]:
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if m and m.group(1) == "total":
            break
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def dry_run(workdir: Path, config: Path, repeat: int, warmup: int) -> tuple[dict[str, int], list[float]]:
    """({rule: jobs}, seconds of each timed `snakemake -n`) in an empty directory."""
    workdir.mkdir()
    logs = []
    seconds = report.timings(lambda: logs.append(snakemake(workdir, config, "-n")[1]), repeat, warmup)
    return job_counts(logs[-1]), seconds


def targets(shards: int) -> list[str]:
    return [f"results/{DATASET}/features/{f}/shard-{k}.h5" for f in FEATURES for k in range(shards)]


def build(workdir: Path, config: Path, shards: int, cores: int) -> tuple[float, float, float, str]:
    """(wall seconds, the jobs' summed shell wall and CPU seconds, log) of building the shards from scratch."""
    for d in (workdir / "results" / DATASET / "features", workdir / "benchmarks" / "features"):
        shutil.rmtree(d, ignore_errors=True)
    seconds, log = snakemake(workdir, config, "--cores", str(cores), *targets(shards))
    done = re.findall(r"(\d+) of \d+ steps \(100%\) done", log)
    if not done or int(done[-1]) != len(targets(shards)):
        raise RuntimeError(f"expected {len(targets(shards))} feature jobs, the log says {done}:\n{log[-2000:]}")
    tsv = [p.read_text().splitlines() for p in (workdir / "benchmarks" / "features").rglob("*.tsv")]
    stats = [dict(zip(lines[0].split("\t"), lines[1].split("\t"))) for lines in tsv]
    return seconds, sum(float(r["s"]) for r in stats), sum(float(r["cpu_time"]) for r in stats), log


def commands(log: str) -> list[list[str]]:
    """The `soundbench` arguments of every shell command in a Snakemake log (no env prefix, no redirection)."""
    out = []
    for line in re.findall(r"^Shell command: (.+)$", log, re.M):
        words = shlex.split(line)
        end = words.index(">") if ">" in words else len(words)
        out.append(words[words.index("soundbench") + 1:end])
    return out


def in_process(workdir: Path, argvs: list[list[str]]) -> float:
    """Seconds of the jobs' own work: their commands through `cli.main` in this process, one after another on
    one thread (as the rule's OMP_NUM_THREADS=1), after one untimed call that does the imports."""
    def call(argv):
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            if cli.main(argv) != 0:
                raise RuntimeError(f"soundbench {shlex.join(argv)} failed: {err.getvalue()[-2000:]}")

    cwd = os.getcwd()
    os.chdir(workdir)  # the commands' paths are relative to the workflow's directory
    try:
        with report.one_core():
            call(argvs[0])
            t0 = time.perf_counter()
            for argv in argvs:
                call(argv)
            return time.perf_counter() - t0
    finally:
        os.chdir(cwd)


def step_imports(step: str) -> str:
    """The import statements of `cli.cmd_<step>`: what `python -m soundbench <step>` loads before its work."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(cli, f"cmd_{step}"))))
    return "\n".join(ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))


# imports a step makes only for some jobs: a spectral feature spec loads the torch STFT (a waveform one does not)
LATE_IMPORTS = {"features_spectral": ("features", "import soundbench.features.logmel")}


def startup(steps: list[str], repeat: int) -> dict[str, float]:
    """{step: seconds of a fresh interpreter doing the step's imports} (steps with the same imports share one
    timing), plus LATE_IMPORTS' variants; PYTHONPATH as the workflow sets it for its jobs."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    by_code: dict[str, float] = {}
    out = {}
    for step in steps + list(LATE_IMPORTS):
        base, extra = LATE_IMPORTS.get(step, (step, ""))
        code = "import soundbench.cli\n" + step_imports(base) + "\n" + extra
        if code not in by_code:
            run = lambda: subprocess.run([sys.executable, "-c", code], env=env, check=True)  # noqa: E731
            by_code[code] = report.best(report.timings(run, repeat=repeat, warmup=0))
        out[step] = by_code[code]
    return out


def features_config(path: Path, shards: int) -> Path:
    """One demo dataset with the demo's own feature specs, `shards` shards each."""
    demo = yaml.safe_load(DEMO.read_text())
    cfg = {"datasets": {DATASET: {"source": "demo", "shards": shards}},
           "features": {f: demo["features"][f] for f in FEATURES}, "experiments": {}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def measure(tmp: Path, quick: bool) -> dict:
    """Every timing of the bench, raw."""
    shards, pairs, repeat = (1, 1, 1) if quick else (5, 2, 3)  # full: ~30 s at --cores 1
    m: dict = {"shards": shards}
    m["paper_jobs"], m["dry_s"] = dry_run(tmp / "paper", PAPER, repeat, warmup=0 if quick else 1)
    m["demo_jobs"], m["demo_dry_s"] = dry_run(tmp / "demo", DEMO, 1, warmup=0)
    work = tmp / "features"
    work.mkdir()
    config = features_config(work / "config.yaml", shards)
    m["prep_s"], log = snakemake(work, config, "--cores", "2", f"results/{DATASET}/manifest.csv")
    m["prep_jobs"] = sum(job_counts(log).values())
    for key in ("cores1_s", "shell_s", "cores2_s", "cpu2_s"):
        m[key] = []
    for i in range(pairs):  # interleaved, so a burst of load elsewhere hits both sides
        wall, shell, _, log = build(work, config, shards, cores=1)
        m["cores1_s"].append(wall)
        m["shell_s"].append(shell)
        if i == 0:
            m["noop_s"] = snakemake(work, config, "--cores", "1", *targets(shards))[0]
            m["work_s"] = in_process(work, commands(log))
        wall, _, cpu, _ = build(work, config, shards, cores=2)
        m["cores2_s"].append(wall)
        m["cpu2_s"].append(cpu)
    steps = {STEP.get(r, r) for r in m["demo_jobs"]} & {n[4:] for n in dir(cli) if n.startswith("cmd_")}
    m["startup_s"] = startup(sorted(steps | {"features"}), repeat)
    return m


def features_startup(m: dict) -> float:
    """Mean start-up of the bench's feature jobs: the spectral specs' jobs also import the torch STFT."""
    demo = yaml.safe_load(DEMO.read_text())["features"]
    ups = [m["startup_s"]["features_spectral" if demo[f]["kind"] != "waveform" else "features"] for f in FEATURES]
    return sum(ups) / len(ups)


def summarise(m: dict) -> dict:
    """The derived numbers: speedup, per-job overhead and its parts, the demo's share."""
    n = len(FEATURES) * m["shards"]
    w1, shell = report.best(m["cores1_s"]), report.best(m["shell_s"])
    per_job = (w1 - m["noop_s"] - m["work_s"]) / n
    # small differences of noisy timings can come out below zero: a job costs at least nothing
    scheduling = max((w1 - m["noop_s"] - shell) / n, 0.0)
    rest = max(per_job - features_startup(m), 0.0)
    demo = []
    for rule, jobs in m["demo_jobs"].items():
        step = STEP.get(rule, rule)
        up = m["startup_s"].get(step)
        cost = per_job if rule == "features" else scheduling if up is None else rest + up
        demo.append({"rule": rule, "step": step if up is not None else "-", "jobs": jobs, "startup_s": up,
                     "per_job_s": cost, "total_s": jobs * cost})
    total = sum(r["total_s"] for r in demo)
    w2 = report.best(m["cores2_s"])
    # CPU seconds the jobs got per second of the --cores 2 build: below 2 when other work shares the machine
    cores_used = report.best(m["cpu2_s"]) / (w2 - m["noop_s"])
    return {"jobs": n, "cores1_s": w1, "cores2_s": w2, "speedup": w1 / w2, "cores_used": cores_used,
            # the ratio if the jobs split perfectly over 2 cores and only Snakemake's start-up stayed serial
            "speedup_ceiling": w1 / (m["noop_s"] + (w1 - m["noop_s"]) / 2),
            "per_job_s": per_job, "scheduling_s": scheduling, "rest_s": rest, "demo": demo,
            "demo_jobs": sum(m["demo_jobs"].values()), "demo_overhead_s": total, "share_pct": 100 * total / DEMO_WALL_S}


def rows(m: dict, s: dict) -> list[dict]:
    n, paper_jobs = s["jobs"], sum(m["paper_jobs"].values())
    times = lambda xs: f"median of {len(xs)}" if len(xs) > 1 else "once"  # noqa: E731
    return [
        {"what": "dry-run of paper.yaml (`snakemake -n`)", "jobs": paper_jobs, "seconds": report.best(m["dry_s"]),
         "how": f"measured, {times(m['dry_s'])}"},
        {"what": "dry-run of config.yaml (the demo)", "jobs": s["demo_jobs"], "seconds": m["demo_dry_s"][0],
         "how": "measured, once"},
        {"what": f"{DATASET} demo -> manifest, --cores 2", "jobs": m["prep_jobs"], "seconds": m["prep_s"],
         "how": "measured, not in the ratio"},
        {"what": "features, --cores 1 (W1)", "jobs": n, "seconds": s["cores1_s"], "per_job": s["cores1_s"] / n,
         "how": f"measured, {times(m['cores1_s'])}"},
        {"what": "features, --cores 2", "jobs": n, "seconds": s["cores2_s"], "per_job": s["cores2_s"] / n,
         "how": f"measured, {times(m['cores2_s'])}; jobs got {s['cores_used']:.2g} cores of CPU"},
        {"what": "the same, nothing to do (F)", "jobs": 0, "seconds": m["noop_s"], "how": "measured"},
        {"what": "the jobs' shell wall (benchmark: files)", "jobs": n, "seconds": report.best(m["shell_s"]),
         "per_job": report.best(m["shell_s"]) / n, "how": "measured by Snakemake, --cores 1"},
        {"what": "the jobs' own work, in-process (S)", "jobs": n, "seconds": m["work_s"], "per_job": m["work_s"] / n,
         "how": "measured, one thread"},
        {"what": "overhead per job (W1 - F - S) / N", "jobs": n, "seconds": s["per_job_s"] * n,
         "per_job": s["per_job_s"], "how": "derived from the measured"},
        {"what": "  of it: interpreter + imports", "per_job": features_startup(m),
         "how": "measured, `python -c` of cmd_features' imports (+ the STFT's for spectral specs)"},
        {"what": "  of it: Snakemake per job", "per_job": s["scheduling_s"], "how": "derived: (W1 - F - shell) / N"},
        {"what": "demo: every job x its overhead", "jobs": s["demo_jobs"], "seconds": s["demo_overhead_s"],
         "per_job": s["demo_overhead_s"] / s["demo_jobs"], "how": "derived, per rule below"},
    ]


def run(quick: bool = False, out_dir=None) -> dict:
    """The bench; out_dir is unused (the CLI writes the record), everything else lives in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="soundbench-bench-workflow-") as tmp:
        m = measure(Path(tmp), quick)
    s = summarise(m)
    table = rows(m, s)
    print(report.table("Snakemake: planning, per-job overhead, feature extraction on 1 and 2 cores", table,
                       [("what", "what"), ("jobs", "jobs"), ("seconds", "seconds"), ("per_job", "s per job"),
                        ("how", "how")]))
    print()
    print(report.table(f"Per-job overhead of the demo's jobs: features as measured above, the others the rest "
                       f"({s['rest_s']:.3g} s: Snakemake, shell, first calls) + their step's interpreter and imports",
                       s["demo"],
                       [("rule", "rule"), ("step", "soundbench step"), ("jobs", "jobs"),
                        ("startup_s", "start-up s"), ("per_job_s", "overhead s/job"), ("total_s", "total s")]))
    print(f"demo wall time {DEMO_WALL_S:g} s: `make run` as measured in the README (not rerun here); "
          f"overhead {s['demo_overhead_s']:.3g} s = {s['share_pct']:.3g} % of it")
    goals = [
        report.goal(f"dry-run of paper.yaml ({table[0]['jobs']} jobs)", table[0]["seconds"], DRY_RUN_GOAL,
                    higher_is_better=False, unit=" s"),
        report.goal(f"per-job overhead x {s['demo_jobs']} demo jobs / demo wall time", s["share_pct"], OVERHEAD_GOAL,
                    higher_is_better=False, unit=" %"),
        report.goal(f"feature extraction ({s['jobs']} shards), --cores 1 -> --cores 2", s["speedup"], SPEEDUP_GOAL,
                    unit="x"),
    ]
    print(report.goals_text(goals))
    print(f"  speedup bounds: {s['speedup_ceiling']:.3g}x if the jobs split perfectly and only Snakemake's start-up "
          f"is serial; the --cores 2 jobs got {s['cores_used']:.2g} cores of CPU on average (2 at most)")
    return {"quick": quick, "rows": table, "demo_rules": s["demo"], "measured": m,
            "derived": {k: v for k, v in s.items() if k != "demo"}, "demo_wall_s": DEMO_WALL_S,
            "demo_wall_source": "README: `make run` on the 2-core CI machine (not rerun by this bench)",
            "goals": goals}
