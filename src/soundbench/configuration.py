"""Config checks that run before any job: the schema (with the key path in the message) and cross-references."""
from __future__ import annotations

import json

import jsonschema
import yaml


class ConfigError(ValueError):
    pass


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def check_schema(config: dict, schema_path) -> None:
    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        lines = [f"config key {_where(e)}: {e.message}" for e in errors[:10]]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def check_references(config: dict) -> None:
    """Every experiment names a known system, a configured dataset and a valid feature spec."""
    from soundbench import datasets, systems
    from soundbench.features.spec import FeatureSpec

    for name, spec in config.get("features", {}).items():
        try:
            FeatureSpec.from_config(name, spec)
        except ValueError as e:
            raise ConfigError(f"config key features.{name}: {e}") from None
    for name, exp in config.get("experiments", {}).items():
        where = f"config key experiments.{name}"
        if exp["system"] not in systems.SYSTEMS:
            raise ConfigError(f"{where}.system: unknown system {exp['system']!r}; known: {', '.join(systems.SYSTEMS)}")
        if exp["dataset"] not in config.get("datasets", {}):
            raise ConfigError(f"{where}.dataset: {exp['dataset']!r} is not configured under datasets")
        datasets.get(exp["dataset"])
        if exp["feature"] not in config.get("features", {}):
            raise ConfigError(f"{where}.feature: {exp['feature']!r} is not a feature spec under features")
        for key in ("params", "train"):
            json.dumps(exp.get(key, {}))
