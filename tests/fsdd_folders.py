"""Arrange the Free Spoken Digit Dataset (../shared/data/fsdd) as audiofolder class folders.

`recordings/<digit>_<speaker>_<take>.wav` -> `<out>/<digit word>/<digit>_<speaker>_<take>.wav` (symbolic links, no
copy): the folder is the class, the speaker stays in the file name for the grouped split
(`group_pattern: "^[0-9]+_([a-z]+)_"`). Used by workflow/experiments/fsdd.yaml and tests/test_audiofolder.py.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def build(fsdd: Path, out: Path, takes: int | None = None) -> Path:
    """takes: link only the takes 0 .. takes-1 of every speaker and digit (tests; None: all 50)."""
    out.mkdir(parents=True, exist_ok=True)
    for wav in sorted((fsdd / "recordings").glob("*.wav")):
        digit, _, take = wav.stem.split("_")
        word = WORDS[int(digit)]
        if takes is not None and int(take) >= takes:
            continue
        dst = out / word / wav.name
        dst.parent.mkdir(exist_ok=True)
        if not dst.exists():
            os.symlink(wav.resolve(), dst)
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), Path(sys.argv[2])))
