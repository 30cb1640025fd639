"""Option blocks whose keys their owner declares: an experiment's `params:` (its system's System(params={...}) in
soundbench/systems.py) and a dataset's `parse:` (its module's DatasetInfo.options). The declarations are read from
the registries, so a newly added system or dataset is checked without any change here.

Rules: a key must have a declared default; a value's type must be the default's (an int where the default is a
float is fine, a bool is never a number); a None default accepts anything; a list is checked element-wise when
the default's elements share one type. Every problem names where it is (config key experiments.NAME.params.KEY)
and, for an unknown key, the known ones.

`train:` keys are checked by the config schema ($defs/train); `check_train` applies the same schema to a
`soundbench train --train` given without Snakemake.
"""
from __future__ import annotations

from pathlib import Path

# the config schema of a source checkout (the package is installed editable from it); absent elsewhere
SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class OptionError(ValueError):
    """An option block holds an undeclared key or a value of the wrong type; the message names each."""


def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def _fits(value, default) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def value_problems(value, default, where: str) -> list[str]:
    """What is wrong with one value against its declared default ([] when nothing)."""
    if not _fits(value, default):
        return [f"{where}: expected {_type_name(default)} like the default {default!r}, got {_type_name(value)} "
                f"{value!r}"]
    if isinstance(default, (list, tuple)) and default and value:
        kinds = {type(d) for d in default}
        if len(kinds) == 1:  # a homogeneous default (widths: [16, 32, 64]): every element like its elements
            out = []
            for i, v in enumerate(value):
                out += value_problems(v, default[0], f"{where}.{i}")
            return out
    return []


def problems(given, defaults: dict, where: str, owner: str) -> list[str]:
    """Every problem of an option block `given` against `defaults`; where: its config key path."""
    if given is None:
        return []
    if not isinstance(given, dict):
        return [f"{where}: expected a mapping of {owner}'s options, got {_type_name(given)} {given!r}"]
    out = []
    for key, value in given.items():
        if key not in defaults:
            known = ", ".join(sorted(map(str, defaults))) or "none"
            out.append(f"{where}.{key}: unknown option of {owner}; known: {known}")
        else:
            out += value_problems(value, defaults[key], f"{where}.{key}")
    return out


def _raise(found: list[str]) -> None:
    if found:
        raise OptionError("invalid options:\n  " + "\n  ".join(found))


def check_params(system_name: str, params, where: str = "params") -> None:
    """An experiment's params against its system's declared defaults (OptionError naming each key)."""
    from soundbench import systems

    _raise(problems(params, systems.get(system_name).params, where, f"system {system_name}"))


def check_parse(dataset: str, options, defaults: dict | None = None, where: str = "parse") -> None:
    """A dataset's parse options against its declared ones (DatasetInfo.options, or `defaults` when given)."""
    if defaults is None:
        from soundbench import datasets

        defaults = datasets.get(dataset).options
    _raise(problems(options, defaults, where, f"dataset {dataset}"))


def config_problems(config: dict) -> list[str]:
    """Every params/parse problem of a whole configuration, each as `config key PATH: ...`."""
    from soundbench import datasets, systems

    found = []
    for name, cfg in (config.get("datasets") or {}).items():
        if not isinstance(cfg, dict):
            continue
        try:
            kind = datasets.type_of(name, cfg)  # own data names its dataset type with `type:`
        except KeyError:
            continue  # the reference checks name an unknown dataset
        found += problems(cfg.get("parse"), datasets.get(kind).options, f"config key datasets.{name}.parse",
                          f"dataset {kind}")
    for name, exp in (config.get("experiments") or {}).items():
        if isinstance(exp, dict) and exp.get("system") in systems.SYSTEMS:
            found += problems(exp.get("params"), systems.get(exp["system"]).params,
                              f"config key experiments.{name}.params", f"system {exp['system']}")
    return found


def check_train(train, where: str = "train") -> None:
    """A `train:` block against the config schema's $defs/train (the checkout's schema; without it, the keys
    against the training loop's defaults only)."""
    import jsonschema
    import yaml

    from soundbench.training import loop

    if SCHEMA.exists():
        schema = yaml.safe_load(SCHEMA.read_text())
        sub = {**schema["$defs"]["train"], "$defs": schema["$defs"]}
        errors = sorted(jsonschema.Draft202012Validator(sub).iter_errors(train), key=lambda e: list(e.path))
        _raise([f"{'.'.join([where, *map(str, e.absolute_path)])}: {e.message}" for e in errors[:10]])
    elif isinstance(train, dict):
        _raise([f"{where}.{k}: unknown training setting; known: {', '.join(sorted(loop.DEFAULTS))}"
                for k in train if k not in loop.DEFAULTS])
