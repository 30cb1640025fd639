"""Property-based tests of the config validation (hypothesis; see fuzzing.py for the bounded default and the long
profile): random keys and values in an experiment's `params:` and `train:` (stages included) and in a dataset's
`parse:`, for every registered system and dataset.

Invariants:
- a config is accepted exactly when every params/parse key is declared by its system/dataset and every value has
  its default's type (soundbench/declared_options.py rules); nothing undeclared passes silently;
- every error is a ConfigError (never a TypeError or KeyError) and names the key it is about with its full path
  (config key experiments.NAME.params.KEY, datasets.NAME.parse.KEY, experiments.NAME.train...);
- `soundbench train` without Snakemake (runner's checks) refuses the same params and train blocks, naming the key.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from fuzzing import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from soundbench import configuration, datasets, declared_options, systems

SCHEMA = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"
BASE = {
    "datasets": {"speech_commands": {"source": "demo"}},
    "features": {"lm": {"kind": "logmel", "sample_rate": 16000, "n_mels": 20}},
    "experiments": {"e": {"system": "smallcnn", "dataset": "speech_commands", "feature": "lm"}},
}
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                   st.floats(allow_nan=False, allow_infinity=False, width=32), st.text(max_size=8))
VALUE = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.text(max_size=4), inner, max_size=2)),
                     max_leaves=5)
KEY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


def _like(default) -> st.SearchStrategy:
    """Values that have the default's type (and sometimes not: VALUE)."""
    if default is None:
        return VALUE
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(0, 10**6)
    if isinstance(default, float):
        return st.one_of(st.floats(0, 10, allow_nan=False), st.integers(0, 10))
    if isinstance(default, str):
        return st.text(max_size=8)
    if isinstance(default, list) and default and len({type(d) for d in default}) == 1:
        return st.lists(_like(default[0]), max_size=3)
    return st.just(copy.deepcopy(default))


def _block(defaults: dict) -> st.SearchStrategy:
    """(option block, whether every entry is declared and well-typed)."""
    declared = sorted(defaults)
    entry = st.one_of(
        *([st.sampled_from(declared).flatmap(lambda k: st.tuples(st.just(k), _like(defaults[k])))] if declared
          else []),
        *([st.sampled_from(declared).flatmap(lambda k: st.tuples(st.just(k), VALUE))] if declared else []),
        st.tuples(KEY_TEXT, VALUE),
    )
    return st.lists(entry, max_size=4).map(dict)


def _valid(block: dict, defaults: dict) -> bool:
    return declared_options.problems(block, defaults, "p", "o") == []


def _expected_ok(block: dict, defaults: dict) -> bool:
    """The rules restated independently: declared key, and the default's type (int for float; None: anything;
    homogeneous lists element-wise)."""
    def fits(v, d):
        if d is None:
            return True
        if isinstance(d, bool):
            return isinstance(v, bool)
        if isinstance(d, int):
            return type(v) is int
        if isinstance(d, float):
            return type(v) in (int, float)
        if isinstance(d, list):
            return isinstance(v, list) and (not d or len({type(x) for x in d}) > 1 or all(fits(x, d[0]) for x in v))
        return isinstance(v, type(d))
    return all(k in defaults and fits(v, defaults[k]) for k, v in block.items())


def _check(cfg: dict) -> str | None:
    try:
        configuration.check_schema(cfg, SCHEMA)
        configuration.check_references(cfg)
    except configuration.ConfigError as e:
        return str(e)
    return None


@fuzz_settings(60)
@given(st.sampled_from(sorted(systems.SYSTEMS)).flatmap(lambda s: st.tuples(st.just(s), _block(systems.get(s).params))))
def test_params_of_any_system(case):
    system, params = case
    cfg = copy.deepcopy(BASE)
    cfg["experiments"]["e"].update(system=system, params=params)
    if system == "sed_crnn" or system == "sed_at":
        cfg["datasets"] = {"dcase2018_task4": {"source": "demo"}}
        cfg["experiments"]["e"]["dataset"] = "dcase2018_task4"
    error = _check(cfg)
    defaults = systems.get(system).params
    assert (error is None) == _expected_ok(params, defaults) == _valid(params, defaults), (params, error)
    if error is not None:
        bad = [k for k in params if not _expected_ok({k: params[k]}, defaults)]
        for key in bad:
            assert f"config key experiments.e.params.{key}" in error, (key, error)
    runner_error = None
    try:
        declared_options.check_params(system, params, "--params")
    except declared_options.OptionError as e:
        runner_error = str(e)
    assert (runner_error is None) == (error is None)


@fuzz_settings(60)
@given(st.sampled_from(datasets.NAMES).flatmap(lambda d: st.tuples(st.just(d), _block(datasets.get(d).options))))
def test_parse_options_of_any_dataset(case):
    name, parse = case
    cfg = copy.deepcopy(BASE)
    cfg["datasets"] = {name: {"source": "demo", "parse": parse}}
    cfg["experiments"]["e"]["dataset"] = name
    error = _check(cfg)
    defaults = datasets.get(name).options
    assert (error is None) == _expected_ok(parse, defaults), (parse, error)
    for key in [k for k in parse if not _expected_ok({k: parse[k]}, defaults)]:
        assert f"config key datasets.{name}.parse.{key}" in error, (key, error)


TRAIN_KEYS = ["lr", "batch_size", "optimizer", "stages", "select_on", "normalize", "momentum", "epochs", "lrr"]
STAGE = st.dictionaries(st.sampled_from(["epochs", "lr", "patience", "reset_optimizer", "epochz"]), VALUE,
                        max_size=3)


@fuzz_settings(60)
@given(st.dictionaries(st.one_of(st.sampled_from(TRAIN_KEYS), KEY_TEXT),
                       st.one_of(VALUE, st.lists(STAGE, min_size=1, max_size=2)), max_size=3))
def test_train_blocks(train):
    cfg = copy.deepcopy(BASE)
    cfg["experiments"]["e"]["train"] = train
    error = _check(cfg)
    runner_error = None
    try:
        declared_options.check_train(json.loads(json.dumps(train)), "--train")
    except declared_options.OptionError as e:
        runner_error = str(e)
    assert (error is None) == (runner_error is None), (train, error, runner_error)
    if error is not None:
        assert "config key experiments.e.train" in error
        # the key at fault is named: as a path component, or quoted in the schema's message
        assert any(f"train.{k}" in error or repr(k) in error for k in train), error
