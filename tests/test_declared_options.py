"""Issue 15, break 5: typos and wrong types in `params:`, `parse:` and `train:` are named, with the experiment (or
dataset) and the key path, before any job runs; every key a system or dataset reads is declared with a default."""
from __future__ import annotations

import copy
import importlib
import inspect
import re
from pathlib import Path

import pytest
import yaml
from workflow_runs import snakemake

from soundbench import cli, configuration, datasets, declared_options, systems
from soundbench.datasets.common import ManifestError, option

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"

SMALL = {
    "datasets": {"speech_commands": {"source": "demo", "demo": {"per_word": 2}}},
    "features": {"logmel16k": {"kind": "logmel", "sample_rate": 16000, "n_fft": 512, "hop_length": 256,
                               "n_mels": 40}},
    "experiments": {"sc_cnn": {"system": "smallcnn", "dataset": "speech_commands", "feature": "logmel16k",
                               "train": {"stages": [{"epochs": 1}]}}},
}


def _checked(cfg: dict) -> None:
    configuration.check_schema(cfg, SCHEMA)
    configuration.check_references(cfg)


@pytest.mark.parametrize("edit, named", [
    # params: an unknown key lists the known ones
    (lambda c: c["experiments"]["sc_cnn"].update(params={"dropotu": 0.1}),
     r"experiments\.sc_cnn\.params\.dropotu: unknown option of system smallcnn; known: dropout, widths"),
    # params: a type other than the default's
    (lambda c: c["experiments"]["sc_cnn"].update(params={"dropout": "high"}),
     r"experiments\.sc_cnn\.params\.dropout: expected float like the default 0\.2, got str 'high'"),
    (lambda c: c["experiments"]["sc_cnn"].update(params={"widths": [16, "32"]}),
     r"experiments\.sc_cnn\.params\.widths\.1: expected int"),
    (lambda c: c["experiments"]["sc_cnn"].update(params={"widths": 16}),
     r"experiments\.sc_cnn\.params\.widths: expected list"),
    # parse: the dataset module's declared options
    (lambda c: c["datasets"]["speech_commands"].update(parse={"validation_fraction": 0.1}),
     r"datasets\.speech_commands\.parse\.validation_fraction: unknown option of dataset speech_commands; known: none"),
    (lambda c: c["datasets"].update(mtt={"source": "demo", "parse": {"top_tags": "50"}}),
     r"datasets\.mtt\.parse\.top_tags: expected int like the default 50, got str '50'"),
    (lambda c: c["datasets"].update(mtt={"source": "demo", "parse": {"top_tag": 50}}),
     r"datasets\.mtt\.parse\.top_tag: unknown option of dataset mtt; known: top_tags"),
    # train: the schema's (the seams issue); stages too
    (lambda c: c["experiments"]["sc_cnn"]["train"].update(lrr=0.5), r"experiments\.sc_cnn\.train: .*'lrr'"),
    (lambda c: c["experiments"]["sc_cnn"]["train"].update(stages=[{"epochz": 3}]),
     r"experiments\.sc_cnn\.train\.stages\.0: .*'epochz'"),
    (lambda c: c["experiments"]["sc_cnn"]["train"].update(lr="fast"),
     r"experiments\.sc_cnn\.train\.lr: 'fast' is not of type 'number'"),
])
def test_a_typo_or_wrong_type_is_named_with_its_key_path(edit, named):
    cfg = copy.deepcopy(SMALL)
    edit(cfg)
    with pytest.raises(configuration.ConfigError, match=f"config key {named}"):
        _checked(cfg)


@pytest.mark.parametrize("params", [
    {"dropout": 0},  # an int where the default is a float
    {"widths": [8]},
    {},
])
def test_values_of_the_defaults_type_pass(params):
    cfg = copy.deepcopy(SMALL)
    cfg["experiments"]["sc_cnn"]["params"] = params
    _checked(cfg)


def test_a_none_default_takes_any_type_and_a_bool_is_no_number():
    assert declared_options.problems({"n": "x", "m": [1]}, {"n": None, "m": None}, "p", "s") == []
    assert declared_options.problems({"n": True}, {"n": 1}, "p", "s") == ["p.n: expected int like the default 1, "
                                                                         "got bool True"]
    assert declared_options.problems({"b": 1}, {"b": False}, "p", "s") == ["p.b: expected bool like the default "
                                                                           "False, got int 1"]


def test_every_problem_is_listed_in_one_message():
    cfg = copy.deepcopy(SMALL)
    cfg["experiments"]["sc_cnn"]["params"] = {"a": 1, "dropout": "x"}
    cfg["datasets"]["speech_commands"]["parse"] = {"b": 2}
    with pytest.raises(configuration.ConfigError) as err:
        _checked(cfg)
    for key in ("experiments.sc_cnn.params.a", "experiments.sc_cnn.params.dropout", "datasets.speech_commands.parse.b"):
        assert f"config key {key}:" in str(err.value)


def test_a_new_system_is_checked_from_its_declaration(monkeypatch):
    """The check reads System(params=...), never a list of its own: a system added later is covered."""
    toy = systems.System("toy", "Toy", "torch", lambda *a, **k: None, params={"depth": 3, "mode": None})
    monkeypatch.setitem(systems.SYSTEMS, "toy", toy)
    cfg = copy.deepcopy(SMALL)
    cfg["experiments"]["sc_cnn"].update(system="toy", params={"depth": 2.5, "mode": [1], "deepth": 1})
    with pytest.raises(configuration.ConfigError) as err:
        _checked(cfg)
    assert "params.depth: expected int like the default 3, got float 2.5" in str(err.value)
    assert "params.deepth: unknown option of system toy; known: depth, mode" in str(err.value)
    assert "params.mode" not in str(err.value)


def test_the_parser_refuses_a_wrong_type_too():
    """`soundbench manifest --set` bypasses the config: the parsers' option() checks the same rules."""
    with pytest.raises(ManifestError, match=r"mtt: parse\.top_tags: expected int like the default 50, got str"):
        option({"top_tags": "many"}, {"top_tags": 50}, "mtt")
    assert option({"top_tags": 10}, {"top_tags": 50}, "mtt") == {"top_tags": 10}


@pytest.mark.parametrize("flag, value, named", [
    ("--train", '{"lr": "fast"}', "--train.lr: 'fast' is not of type 'number'"),
    ("--train", '{"stages": [{"epochz": 3}]}', "--train.stages.0: Additional properties"),
    ("--params", '{"dropotu": 0.5}', "--params.dropotu: unknown option of system smallcnn"),
])
def test_soundbench_train_without_snakemake_names_the_key_not_a_type_error(tmp_path, capsys, flag, value, named):
    args = ["train", "--dataset", "speech_commands", "--manifest", str(tmp_path / "m.csv"), "--inputs",
            '{"x": {"spec": {}, "shards": []}}', "--system", "smallcnn", "--task", "multiclass", "--out-dir",
            str(tmp_path / "run"), "--checkpoint", str(tmp_path / "ck.pt"), flag, value]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert named in err and "TypeError" not in err


def test_snakemake_dry_run_names_the_typos_before_any_job(tmp_path):
    cfg = copy.deepcopy(SMALL)
    cfg["experiments"]["sc_cnn"]["params"] = {"dropotu": 0.1}
    cfg["datasets"]["speech_commands"]["parse"] = {"classes": 12}
    r = snakemake(tmp_path, cfg, "-n", "--cores", "1")
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "config key experiments.sc_cnn.params.dropotu: unknown option of system smallcnn" in out
    assert "config key datasets.speech_commands.parse.classes: unknown option of dataset speech_commands" in out
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


# ------------------------------------------------------------- every key a system or dataset reads is declared

_READS = re.compile(r"""params(?:\.get\(\s*|\[)\s*["'](\w+)["']""")
_OPTS = re.compile(r"""opts(?:\.get\(\s*|\[)\s*["'](\w+)["']""")


def _code_of(fn, depth: int = 3) -> list[tuple[object, str]]:
    """(module, source) of a hook and of the soundbench functions it calls: those it imports (as systems.py's hooks
    import the model modules) and those of its own module it calls by name."""
    try:
        src, module = inspect.getsource(fn), inspect.getmodule(fn)
    except (OSError, TypeError):
        return []
    out = [(module, src)]
    if not depth:
        return out
    for mod, name in re.findall(r"from (soundbench(?:\.\w+)*) import (\w+)", src):
        try:
            target = getattr(importlib.import_module(mod), name)
        except AttributeError:
            target = importlib.import_module(f"{mod}.{name}")
        if inspect.ismodule(target):  # `from soundbench.models import m` ... m.fn(...)
            for fn_name in re.findall(rf"\b{name}\.(\w+)\(", src):
                out += _code_of(getattr(target, fn_name, None), depth - 1)
        else:
            out += _code_of(target, depth - 1)
    for fn_name in set(re.findall(r"(?<![.\w])(\w+)\(", src)):  # same-module helpers called by name
        target = getattr(module, fn_name, None)
        if inspect.isfunction(target) and target is not fn and target.__module__ == module.__name__:
            out += _code_of(target, depth - 1)
    return out


def _params_read(fn) -> set[str]:
    read = set()
    for module, src in _code_of(fn):
        read |= set(_READS.findall(src))
        if re.search(r"params\.get\(k\b.*\bOPTIONS\.items\(\)", src):  # a table of options read by key
            read |= set(module.OPTIONS)
    return read


HOOKS = ("build", "view", "loss", "augment", "convert", "postprocess", "paper_normalization", "input_shapes",
         "decode", "frame_seconds")


@pytest.mark.parametrize("name", sorted(systems.SYSTEMS))
def test_every_params_key_a_system_reads_is_declared(name):
    system = systems.get(name)
    read = set().union(*(_params_read(getattr(system, h)) for h in HOOKS if getattr(system, h) is not None))
    assert read - set(system.params) == set(), f"{name} reads params it does not declare"


def test_every_build_keyword_a_system_takes_is_declared():
    """A keyword of a model constructor that params reach but no default declares could not be set any more."""
    from soundbench.models import baseline, sed_crnn, smallcnn, subspectralnet
    from soundbench.models.samplecnn import SampleCNN

    from_shapes = {"in_channels", "n_mels", "seed"}  # set from the input's shape or the run's seed, not params
    for name, ctor in (("samplecnn", SampleCNN), ("smallcnn", smallcnn.SmallCNN), ("baseline", baseline.build),
                       ("sed_at", sed_crnn.ATCNN), ("sed_crnn", sed_crnn.CRNN),
                       ("subspectralnet", subspectralnet.build)):
        keywords = {k for k, p in inspect.signature(ctor).parameters.items()
                    if p.default is not inspect.Parameter.empty} - from_shapes
        assert keywords - set(systems.get(name).params) == set(), name


@pytest.mark.parametrize("name", datasets.NAMES)
def test_every_parse_option_a_dataset_reads_is_declared(name):
    info = datasets.get(name)
    module = importlib.import_module(info.parse.__module__)
    read = set(_OPTS.findall(inspect.getsource(module)))
    assert read - set(info.options) == set(), f"{name} reads parse options it does not declare"


def test_the_shipped_configs_pass():
    for path in [ROOT / "config.yaml", *sorted((ROOT / "workflow/experiments").glob("*.yaml"))]:
        assert declared_options.config_problems(yaml.safe_load(path.read_text())) == [], path
