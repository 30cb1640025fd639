"""Issue 15, break 8: every path and string that goes from the config into a rule's shell command is one quoted
word: a root with spaces works, and shell metacharacters in root, checksum_lock, device, option keys or the work
directory execute nothing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from workflow_runs import ROOT, arg, planned, snakemake

# each would create a file named PWNED* if a shell ever evaluated it
HOSTILE = "my data $(touch PWNED1) `touch PWNED2`; touch PWNED3 & 'q\" |x"


def _pwned(*dirs: Path) -> list[Path]:
    return [p for d in dirs for p in d.rglob("PWNED*")]


def test_dry_run_passes_every_config_string_as_one_word(tmp_path):
    root = str(tmp_path / HOSTILE / "sc")
    cfg = {"checksum_lock": f"locks/{HOSTILE}/lock.json", "device": f"cpu {HOSTILE}",
           "datasets": {"speech_commands": {"source": "local", "root": root},
                        "mtt": {"source": "demo", "demo": {f"per_tag{HOSTILE}": 1}}},
           "features": {"lm": {"kind": "logmel", "sample_rate": 16000, "n_mels": 20}},
           "experiments": {"sc": {"system": "smallcnn", "dataset": "speech_commands", "feature": "lm"},
                           "mt": {"system": "baseline", "dataset": "mtt", "feature": "lm"}}}
    jobs = {(j["rule"], j["wildcards"].get("dataset")): j["shell"] for j in planned(tmp_path, cfg)}
    assert arg(jobs["manifest", "speech_commands"], "--root") == root
    assert arg(jobs["fetch", "mtt"], "--lock") == cfg["checksum_lock"]
    assert arg(jobs["demo_release", "mtt"], "--set") == f"per_tag{HOSTILE}=1"
    assert arg(jobs["train", "speech_commands"], "--device") == cfg["device"]
    assert _pwned(tmp_path, ROOT) == []


@pytest.mark.slow
def test_a_root_and_a_lock_with_spaces_and_shell_characters_work_and_run_nothing(tmp_path):
    """Real jobs: a demo release fetched with a TOFU lock at a hostile path, then the same files as a `local`
    root at a hostile path, parsed into a manifest; the work directory's name is hostile too."""
    work = tmp_path / f"work {HOSTILE}"
    work.mkdir()
    cfg = {"checksum_lock": f"locks/{HOSTILE}/lock.json",
           "datasets": {"speech_commands": {"source": "demo", "demo": {"per_word": 1}}},
           "features": {}, "experiments": {}}
    r = snakemake(work, cfg, "--cores", "2", "resources/datasets/speech_commands.done")
    assert r.returncode == 0, r.stderr[-3000:]
    assert _pwned(tmp_path, ROOT) == []  # (the demo's files carry checksums: the lock is passed, not written)
    root = tmp_path / HOSTILE / "speech commands"
    root.parent.mkdir()
    (work / "resources/datasets/speech_commands").rename(root)
    cfg["datasets"]["speech_commands"] = {"source": "local", "root": str(root)}
    r = snakemake(work, cfg, "--cores", "1", "results/speech_commands/manifest.csv")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "speech_commands: train" in (work / "logs/manifest/speech_commands.log").read_text()
    assert _pwned(tmp_path, ROOT) == []


def test_no_rule_passes_an_unquoted_config_value():
    """Every {params.X} / {wildcards.X} / {input,output,log} in a shell command is :q-quoted, except the params
    that sbplan already renders as quoted words (JSON values via q(), --set/--flag words)."""
    import re

    quoted_by_plan = {"params.sets", "params.source", "params.demo", "params.options", "params.spec", "params.inputs",
                      "params.params", "params.train", "params.upstream", "params.threshold", "params.runs"}
    bare = []
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        text = smk.read_text()
        for shell in re.findall(r"shell:\s*\n((?:\s+\".*\"\n)+)", text):
            for field in re.findall(r"\{([\w.]+)(:q)?\}", shell):
                name, q = field
                if not q and name != "threads" and name not in quoted_by_plan:
                    bare.append(f"{smk.name}: {{{name}}}")
    assert bare == []


def test_plan_words_quote_keys_and_paths():
    sys.path.insert(0, str(ROOT / "workflow/lib"))
    from sbplan import set_words

    words = set_words({"a b;$(x)": [1, "y z"]})
    import shlex

    assert shlex.split(words) == ["--set", 'a b;$(x)=[1, "y z"]']
    assert subprocess.run(["sh", "-c", f"printf '%s\\n' {words}"], capture_output=True, text=True).stdout.split(
        "\n")[:2] == ["--set", 'a b;$(x)=[1, "y z"]']
