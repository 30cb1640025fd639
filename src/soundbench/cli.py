"""`soundbench <step> ...`: every workflow step without Snakemake (the rules are thin calls into these)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _value(text: str):
    """--set values are YAML scalars/lists: 3, 0.5, true, [1, 2], se."""
    import yaml

    return yaml.safe_load(text)


def _sets(pairs) -> dict:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k] = _value(v)
    return out


def _fraction(text: str) -> float:
    """A number in [0, 1] (argparse names the option when this raises)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in [0, 1]")
    return value


def _json_arg(text: str) -> dict:
    """A JSON value on the command line, or the path of a .json file holding it."""
    p = Path(text)
    try:
        return json.loads(p.read_text() if p.suffix == ".json" and p.exists() else text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e}): {text[:200]}") from None


def cmd_download(a):
    from soundbench.fetch.download import download

    print(download(a.url, Path(a.out), md5=a.md5, sha256=a.sha256, progress=not a.quiet))


def cmd_extract(a):
    from soundbench.fetch.extract import extract

    names = extract([Path(p) for p in a.archive], Path(a.outdir), password=a.password)
    print(f"{len(names)} entries -> {a.outdir}")


def cmd_demo(a):
    from soundbench import datasets
    from soundbench.sources import release_to_json

    out = Path(a.outdir)
    release = datasets.make_demo(a.dataset, out, seed=a.seed, **_sets(a.set))
    (out / "release.json").write_text(release_to_json(release))
    print(f"{a.dataset}: demo release of {len(release.files)} files in {out}")


def cmd_fetch(a):
    from soundbench import sources

    cfg = _json_arg(a.source)
    release = sources.release_for(a.dataset, cfg, a.demo_release)
    sources.fetch(a.dataset, release, Path(a.archives), Path(a.lock) if a.lock else None, progress=not a.quiet,
                  extract=cfg.get("extract"), keep_archives=cfg.get("keep_archives", True))


def cmd_unpack(a):
    from soundbench import sources

    archives = Path(a.archives)
    release = sources.release_from_json((archives / "release.json").read_text())
    n = sources.unpack(release, archives, Path(a.root))
    Path(a.done).write_text(json.dumps({"entries": n, "root": str(Path(a.root).resolve())}) + "\n")


def cmd_manifest(a):
    from soundbench import datasets
    from soundbench import manifest as mf

    info = datasets.get(a.dataset)
    m = info.parse(Path(a.root), allow_missing_audio=a.allow_missing_audio, **_sets(a.set))
    if a.classes:
        m = mf.build(m.table.to_dict("records"), a.classes, source=a.dataset)
    mf.write(m, a.out)
    counts = m.counts()
    print(f"{a.dataset}: train {counts['train']}, validation {counts['validation']}, test {counts['test']} "
          f"(missing audio: {counts['missing']}); {len(m.classes)} classes -> {a.out}")


def cmd_features(a):
    from soundbench import datasets
    from soundbench.features.extract import extract_shard
    from soundbench.features.spec import FeatureSpec

    info = datasets.get(a.dataset)
    spec = FeatureSpec.from_config(a.name, _json_arg(a.spec))
    stats = extract_shard(Path(a.manifest), spec, a.shard, a.n_shards, Path(a.out), load_audio=info.load_audio,
                          load_frames=info.load_frames, clip_seconds=info.clip_seconds,
                          max_failed_fraction=a.max_failed_fraction, skipped_path=Path(a.skipped))
    print(json.dumps(stats))


def cmd_train(a):
    from soundbench import runner

    info = runner.train(a.dataset, a.manifest, _json_arg(a.inputs), a.system, a.task, _json_arg(a.params),
                        _json_arg(a.train), a.seed, a.out_dir, a.checkpoint, a.device, progress=not a.quiet,
                        init_from=a.init_from, teacher=a.teacher)
    print(json.dumps(info))


def cmd_evaluate(a):
    from soundbench import runner

    threshold = None if a.threshold is None else _value(a.threshold)
    out = runner.evaluate(a.manifest, _json_arg(a.inputs), a.model, a.out_dir, threshold, a.device,
                          a.split, a.predictions_from)
    print(json.dumps(out["metrics"]))


def cmd_predict(a):
    from soundbench.predict import predict

    lines = predict(a.run_dir, a.audio, a.out, a.top_k, a.device, a.predictions_from)
    if a.out is None:
        print("\n".join(lines))
    else:
        print(f"{len(a.audio)} files -> {a.out}", file=sys.stderr)


def cmd_aggregate(a):
    from soundbench.reporting import aggregate

    runs = json.loads(Path(a.runs).read_text()) if Path(a.runs).suffix == ".json" else json.loads(a.runs)
    aggregate.run(runs, Path(a.table), Path(a.figures), Path(a.benchmarks) if a.benchmarks else None)


def cmd_describe_model(a):
    from soundbench import describe

    print(json.dumps(describe.describe(a.system, _sets(a.set)), indent=2))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="soundbench", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("download", help="resumable, verified download of one URL (http, https, file)")
    s.add_argument("url")
    s.add_argument("out")
    s.add_argument("--md5")
    s.add_argument("--sha256")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("extract", help="safe extraction of an archive (parts of a split zip in order)")
    s.add_argument("archive", nargs="+")
    s.add_argument("outdir")
    s.add_argument("--password")
    s.set_defaults(func=cmd_extract)

    s = sub.add_parser("demo", help="synthesise a dataset's demo release in its real layout")
    s.add_argument("dataset")
    s.add_argument("outdir")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="demo option")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("fetch", help="download and verify every file of a dataset's release")
    s.add_argument("dataset")
    s.add_argument("--source", required=True, help="the dataset's config (JSON)")
    s.add_argument("--demo-release")
    s.add_argument("--archives", required=True, help="output directory")
    s.add_argument("--lock", help="trust-on-first-use checksum lock file")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_fetch)

    s = sub.add_parser("unpack", help="extract a fetched release into the dataset root (all or nothing)")
    s.add_argument("--archives", required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--done", required=True, help="marker file written on success")
    s.set_defaults(func=cmd_unpack)

    s = sub.add_parser("manifest", help="parse a dataset directory into the canonical manifest; prints split counts")
    s.add_argument("dataset")
    s.add_argument("--root", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--allow-missing-audio", action="store_true")
    s.add_argument("--classes", nargs="+", help="pin the class list and order")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="parse option")
    s.set_defaults(func=cmd_manifest)

    s = sub.add_parser("features", help="extract one HDF5 shard of a feature spec")
    s.add_argument("--dataset", required=True)
    s.add_argument("--manifest", required=True)
    s.add_argument("--name", default="spec")
    s.add_argument("--spec", required=True, help="feature spec (JSON or a .json file)")
    s.add_argument("--shard", type=int, required=True)
    s.add_argument("--n-shards", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--skipped", required=True, help="CSV of undecodable clips")
    s.add_argument("--max-failed-fraction", type=_fraction, default=0.05, help="in [0, 1]")
    s.set_defaults(func=cmd_features)

    for name, func in (("train", cmd_train), ("evaluate", cmd_evaluate)):
        s = sub.add_parser(name, help=f"{name} one run of an experiment")
        s.add_argument("--manifest", required=True)
        s.add_argument("--inputs", required=True,
                       help='JSON (or a .json file): {"NAME": {"spec": {feature spec}, "shards": [h5, ...]}, ...}; '
                            'a single feature is the input "x"')
        s.add_argument("--out-dir", required=True)
        s.add_argument("--device", default="auto")
        if name == "train":
            s.add_argument("--dataset", required=True, help="the dataset's registry name")
            s.add_argument("--system", required=True)
            s.add_argument("--task", required=True, help="multiclass | multilabel | sed | embedding")
            s.add_argument("--params", default="{}")
            s.add_argument("--train", default="{}")
            s.add_argument("--seed", type=int, default=0)
            s.add_argument("--checkpoint", required=True, help="resumable state (kept outside the outputs)")
            s.add_argument("--init-from", help="model.pt of a run whose weights initialise this one")
            s.add_argument("--teacher", help="model.pt of a run the loss may use as a frozen teacher")
            s.add_argument("--quiet", action="store_true")
        else:
            s.add_argument("--model", required=True)
            s.add_argument("--threshold", default=None,
                           help="a number, a list (one per class) or {method: NAME} tuned on validation (YAML); "
                                "default: the system's (0.5 for most)")
            s.add_argument("--split", default="test", help="the split scored in metrics.json")
            s.add_argument("--predictions-from", help="predictions.h5 of a run this evaluation builds on")
        s.set_defaults(func=func)

    s = sub.add_parser("predict", help="apply a trained run to audio files: top-k classes, tags or events (TSV)")
    s.add_argument("run_dir", help="a run directory after evaluate (model.pt, predictions.h5)")
    s.add_argument("audio", nargs="+", help="audio files (any format and rate the decoders read)")
    s.add_argument("--out", help="write the table here (default: standard output)")
    s.add_argument("--top-k", type=int, default=3, help="classes per file of a single-label run")
    s.add_argument("--device", default="auto")
    s.add_argument("--predictions-from", help="the run whose predictions this run's post-processing takes "
                                              "(the SED second pass's tagging run), applied to the same files")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("aggregate", help="tables.csv and figures from finished runs")
    s.add_argument("--runs", required=True, help="JSON list of runs")
    s.add_argument("--table", required=True)
    s.add_argument("--figures", required=True)
    s.add_argument("--benchmarks", help="Snakemake benchmark directory -> stage_times.csv beside the table")
    s.set_defaults(func=cmd_aggregate)

    s = sub.add_parser("describe-model", help="a system's architecture summary and parameter count (JSON)")
    s.add_argument("system")
    s.add_argument("--set", action="append", metavar="KEY=VALUE")
    s.set_defaults(func=cmd_describe_model)

    s = sub.add_parser("bench", help="speed of a stage against its reference: a table and results/bench/<name>.json")
    s.add_argument("name", choices=["features", "loader", "train", "workflow", "all"])
    s.add_argument("--quick", action="store_true", help="fewer repeats and cases (the tests' setting)")
    s.add_argument("--out", default="results/bench", help="directory of the JSON records")
    s.set_defaults(func=cmd_bench)
    return p


def cmd_bench(a):
    import importlib

    from soundbench.bench import BENCHES, report

    for name in BENCHES if a.name == "all" else [a.name]:
        payload = importlib.import_module(f"soundbench.bench.{name}").run(quick=a.quick, out_dir=a.out)
        path = report.write(name, payload, a.out)
        print(f"{name}: {path}\n")


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        a.func(a)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        # every error names its file, clip or key; a traceback adds nothing for a user
        if a.verbose:
            raise
        print(f"soundbench {a.cmd}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
