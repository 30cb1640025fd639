"""Arrange the Free Spoken Digit Dataset (../shared/data/fsdd) in the Speech Commands v0.02 layout.

Word folders named by the digit (zero ... nine, all Speech Commands words), files `<speaker>_nohash_<take>.wav`,
FSDD's conventional test set (takes 0-4 of each speaker and digit) in testing_list.txt, takes 5-9 in
validation_list.txt, the rest training. Files are linked, not copied.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def build(fsdd: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    val, test = [], []
    for wav in sorted((fsdd / "recordings").glob("*.wav")):
        digit, speaker, take = wav.stem.split("_")
        rel = f"{WORDS[int(digit)]}/{speaker}_nohash_{take}.wav"
        dst = out / rel
        dst.parent.mkdir(exist_ok=True)
        if not dst.exists():
            os.symlink(wav.resolve(), dst)
        (test if int(take) < 5 else val if int(take) < 10 else []).append(rel)
    (out / "validation_list.txt").write_text("\n".join(val))
    (out / "testing_list.txt").write_text("\n".join(test))
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), Path(sys.argv[2])))
