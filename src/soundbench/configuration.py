"""Config checks that run before any job: the schema (with the key path in the message) and cross-references.

Also the two readings of an experiment that the workflow and the checks share: its named inputs and the runs it
depends on (init_from, teacher, predictions_from).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jsonschema

# the experiment keys that name another experiment's run: EXP or {experiment: EXP, seed: N}
DEPENDENCIES = ("init_from", "teacher", "predictions_from")
SINGLE_INPUT = "x"  # the name of a `feature:` experiment's only input
DEFAULT_SEEDS = [0]  # the schema's default of `seeds`


class ConfigError(ValueError):
    pass


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _explain(error: jsonschema.ValidationError) -> str:
    """The message of one schema error; a schema node may word its own with `errorMessage: {keyword: text}`."""
    own = error.schema.get("errorMessage", {}) if isinstance(error.schema, dict) else {}
    return own.get(error.validator, error.message)


def check_schema(config: dict, schema_path) -> None:
    # here, not at the top: train and evaluate jobs read normalize_per_input from this module, not the schema
    # (jsonschema + yaml: ~0.1 s of every job's start-up)
    import jsonschema
    import yaml

    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        lines = [f"config key {_where(e)}: {_explain(e)}" for e in errors[:10]]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def input_specs(exp: dict) -> dict[str, str]:
    """{input name: feature spec name} of an experiment; a single `feature:` is the input named x."""
    if exp.get("inputs"):
        return dict(exp["inputs"])
    return {SINGLE_INPUT: exp["feature"]}


def threshold(exp: dict):
    """An experiment's threshold configuration: its own `threshold:`, else its system's default."""
    if exp.get("threshold") is not None:
        return exp["threshold"]
    from soundbench import systems

    return systems.get(exp["system"]).threshold


def dependency_ref(exp: dict, key: str) -> dict | None:
    """An experiment's `key` (DEPENDENCIES) as a mapping {experiment, seed (optional)}; a plain name means
    {experiment: name}; None when absent."""
    ref = exp.get(key)
    if ref is None:
        return None
    return {"experiment": ref} if isinstance(ref, str) else dict(ref)


def dependency(exp: dict, key: str, seed: int) -> tuple[str, int] | None:
    """(experiment, seed) of the run that the run `seed` of `exp` takes its `key` (DEPENDENCIES) from, or None."""
    ref = dependency_ref(exp, key)
    return None if ref is None else (ref["experiment"], ref.get("seed", seed))


def _check_inputs(name: str, exp: dict, config: dict) -> None:
    where = f"config key experiments.{name}"
    if ("feature" in exp) == ("inputs" in exp):
        raise ConfigError(f"{where}: give exactly one of feature (a single input) and inputs (named inputs)")
    specs = config.get("features", {})
    if "feature" in exp:
        if exp["feature"] not in specs:
            raise ConfigError(f"{where}.feature: {exp['feature']!r} is not a feature spec under features")
    else:
        for input_name, spec in exp["inputs"].items():
            if spec not in specs:
                raise ConfigError(f"{where}.inputs.{input_name}: {spec!r} is not a feature spec under features")
    normalize_per_input(exp.get("train", {}).get("normalize"), list(input_specs(exp)), f"{where}.train.normalize")


def normalize_per_input(how, names: list[str], where: str = "train.normalize") -> dict:
    """train.normalize for each input: one setting for all, or a mapping {input name: setting} (inputs left out:
    "none"); a mapping with mean/std is one explicit setting. A name that is no input is a ConfigError."""
    if isinstance(how, dict) and how and not {"mean", "std"} & set(how):
        for name in how:
            if name not in names:
                raise ConfigError(f"{where}.{name}: not an input of this experiment (its inputs: {', '.join(names)})")
        return {n: how.get(n, "none") for n in names}
    return {n: how for n in names}


def _check_dependencies(name: str, exp: dict, experiments: dict) -> None:
    seeds = exp.get("seeds", DEFAULT_SEEDS)
    for key in DEPENDENCIES:
        if exp.get(key) is None:
            continue
        where = f"config key experiments.{name}.{key}"
        source = dependency(exp, key, seeds[0])[0]
        if source not in experiments:
            raise ConfigError(f"{where}: {source!r} is not an experiment under experiments")
        source_seeds = experiments[source].get("seeds", DEFAULT_SEEDS)
        for seed in seeds:
            _, needed = dependency(exp, key, seed)
            if needed not in source_seeds:
                how = "the same seed" if isinstance(exp[key], str) else "the seed given here"
                raise ConfigError(f"{where}: the run of seed {seed} needs {source!r} with seed {needed} ({how}), "
                                  f"but {source!r} runs the seeds {source_seeds}")
        if key == "predictions_from" and experiments[source]["dataset"] != exp["dataset"]:
            raise ConfigError(f"{where}: {source!r} is an experiment on {experiments[source]['dataset']!r}, "
                              f"not on this experiment's dataset {exp['dataset']!r}")


def _check_cycles(experiments: dict) -> None:
    """No experiment depends on itself through its dependencies; the error names the cycle."""
    done: set[str] = set()

    def visit(name: str, path: list[tuple[str, str]]) -> None:  # path: (experiment, key it follows)
        if name in done:
            return
        on_path = [p[0] for p in path]
        if name in on_path:
            cycle = path[on_path.index(name):]
            chain = " ".join(f"{exp} -{key}->" for exp, key in cycle) + f" {name}"
            raise ConfigError(f"config key experiments.{cycle[0][0]}.{cycle[0][1]}: a cycle of dependencies: {chain}")
        for key in DEPENDENCIES:
            dep = dependency(experiments[name], key, 0)
            if dep is not None:
                visit(dep[0], path + [(name, key)])
        done.add(name)

    for name in experiments:
        visit(name, [])


def _check_dataset(name: str, cfg: dict) -> None:
    """A dataset name is a published dataset's, or names own data with `type:` (local source only)."""
    from soundbench import datasets

    try:
        kind = datasets.type_of(name, cfg)
    except KeyError as e:
        raise ConfigError(f"config key {e.args[0]}") from None
    if kind in datasets.GENERIC and not (cfg.get("source") == "local" and (cfg.get("root") or cfg.get("archive"))):
        raise ConfigError(f"config key datasets.{name}.source: a {kind} dataset is your own data: give "
                          "source: local with root: DIR (or archive: PATH)")


def check_references(config: dict) -> None:
    """Every experiment names a known system, a configured dataset and valid feature specs, and the runs it
    depends on exist (experiment, seed, same dataset for predictions_from) without a cycle."""
    from soundbench import datasets, declared_options, systems
    from soundbench.evaluation import thresholds
    from soundbench.features.spec import FeatureSpec

    for name, spec in config.get("features", {}).items():
        try:
            FeatureSpec.from_config(name, spec)
        except ValueError as e:
            raise ConfigError(f"config key features.{name}: {e}") from None
    for name, cfg in config.get("datasets", {}).items():
        _check_dataset(name, cfg)
    experiments = config.get("experiments", {})
    for name, exp in experiments.items():
        where = f"config key experiments.{name}"
        if exp["system"] not in systems.SYSTEMS:
            raise ConfigError(f"{where}.system: unknown system {exp['system']!r}; known: {', '.join(systems.SYSTEMS)}")
        if exp["dataset"] not in config.get("datasets", {}):
            raise ConfigError(f"{where}.dataset: {exp['dataset']!r} is not configured under datasets")
        _check_inputs(name, exp, config)
        if datasets.type_of(exp["dataset"], config["datasets"][exp["dataset"]]) in datasets.GENERIC:
            for input_name, feature in input_specs(exp).items():
                if config["features"][feature].get("clip_seconds") is None and \
                        config["datasets"][exp["dataset"]].get("clip_seconds") is None:
                    raise ConfigError(f"config key datasets.{exp['dataset']}.clip_seconds: own recordings have no "
                                      f"nominal length; set the clip length that the features (here {feature!r}) "
                                      "pad or crop to")
        threshold = exp.get("threshold")
        if isinstance(threshold, dict) and threshold.get("method") not in thresholds.METHODS:
            raise ConfigError(f"{where}.threshold.method: unknown method {threshold.get('method')!r}; known: "
                              f"{', '.join(thresholds.METHODS)}")
        for key in ("params", "train", "threshold"):
            json.dumps(exp.get(key, {}))
    # params and parse keys against what each system and dataset declares (soundbench/declared_options.py)
    problems = declared_options.config_problems(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    for name, exp in experiments.items():
        _check_dependencies(name, exp, experiments)
    _check_cycles(experiments)
