"""Property-based tests of every dataset's metadata parser (hypothesis; see fuzzing.py for the bounded default
and the long profile).

Each dataset's demo release is extracted once in its real layout; every example damages one of its metadata
files (a line replaced by random text, deleted, duplicated or cut short, the file truncated, bytes that are
not UTF-8, a field dropped or added) and parses the tree. Invariants:
- the parser either returns a manifest whose clips are all in known splits with labels among its classes, or
  raises ManifestError; never another exception (a KeyError or IndexError from a bad line is a bug);
- every ManifestError names a file of the dataset (the damaged one or the one its damage contradicts) or the
  dataset, so the user knows where to look.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest
from demo_sizes import SMALL
from fuzzing import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from soundbench.datasets import get, make_demo
from soundbench.manifest import SPLITS, ManifestError

METADATA_SUFFIXES = {".csv", ".txt", ".tsv", ".lst", ".json", ".meta", ".yaml"}


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, tuple[Path, list[Path]]]:
    """{dataset: (extracted root, its metadata files)}."""
    from soundbench.fetch.extract import extract

    out = {}
    for name, small in SMALL.items():
        release_dir = tmp_path_factory.mktemp(f"release-{name}")
        release = make_demo(name, release_dir, seed=5, **small)
        root = tmp_path_factory.mktemp(f"tree-{name}")
        for u in release.unpack:
            extract([release_dir / p for p in u.parts], root / u.dest, kind=u.kind, password=u.password)
        metadata = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in METADATA_SUFFIXES
                          and p.stat().st_size < 2_000_000)
        assert metadata, f"{name}: the demo tree has no metadata file"
        out[name] = (root, metadata)
    return out


def _damage(data: bytes, how: str, rnd: random.Random, junk: str) -> bytes:
    text = data.decode("utf-8", errors="surrogateescape")
    lines = text.split("\n")
    i = rnd.randrange(len(lines))
    if how == "replace":
        lines[i] = junk
    elif how == "delete":
        del lines[i]
    elif how == "duplicate":
        lines.insert(i, lines[i])
    elif how == "cut-line":
        lines[i] = lines[i][: rnd.randrange(len(lines[i]) + 1)]
    elif how == "drop-field" or how == "add-field":
        sep = "\t" if "\t" in lines[i] else ("," if "," in lines[i] else " ")
        fields = lines[i].split(sep)
        if how == "drop-field":
            fields.pop(rnd.randrange(len(fields)))
        else:
            fields.insert(rnd.randrange(len(fields) + 1), junk)
        lines[i] = sep.join(fields)
    elif how == "truncate":
        return data[: rnd.randrange(len(data) + 1)]
    elif how == "not-utf8":
        at = rnd.randrange(len(data) + 1)
        return data[:at] + b"\xff\xfe\xc3" + data[at:]
    return "\n".join(lines).encode("utf-8", errors="surrogateescape")


JUNK = st.lists(st.sampled_from(list("abcXYZ019_-./ \t,;:\"'éü\\") + ["nan", "-1", "1e400", "../", "audio/"]),
                max_size=30).map("".join)
HOW = st.sampled_from(["replace", "delete", "duplicate", "cut-line", "drop-field", "add-field", "truncate",
                       "not-utf8"])


@pytest.mark.parametrize("name", sorted(SMALL))
@fuzz_settings(12)
@given(data=st.data())
def test_damaged_metadata_is_parsed_or_refused_by_name(trees, name, data):
    root, metadata = trees[name]
    path = data.draw(st.sampled_from(metadata), label="file")
    how, junk, seed = data.draw(HOW, label="how"), data.draw(JUNK, label="junk"), data.draw(st.integers(0, 2**16))
    original = path.read_bytes()
    try:
        path.write_bytes(_damage(original, how, random.Random(seed), junk))
        try:
            manifest = get(name).parse(root, allow_missing_audio=True)
        except ManifestError as e:
            names = {p.name for p in metadata} | {p.parent.name for p in metadata} | {name, root.name}
            assert any(n and n in str(e) for n in names), f"{name}: error names no file: {e}"
            return
        classes = set(manifest.classes)
        assert set(manifest.table["split"]) <= set(SPLITS)
        for labels in manifest.label_lists():
            assert set(labels) <= classes
    finally:
        path.write_bytes(original)


def test_the_trees_parse_undamaged(trees):
    for name, (root, _) in trees.items():
        manifest = get(name).parse(root)
        assert manifest.counts()["train"] > 0, name
