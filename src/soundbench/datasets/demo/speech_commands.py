"""Demo Speech Commands v0.02: `speech_commands_v0.02.tar.gz` in the real layout.

Members (all under `./`, as in the real tarball): `<word>/<speakerhash>_nohash_<n>.wav` (16 kHz mono 16-bit,
1 s or shorter), `_background_noise_/*.wav` (longer noise recordings with the real file names, plus its
README.md), `validation_list.txt` / `testing_list.txt` (no trailing newline, as the real v0.02 files),
`LICENSE`, `README.md`.

Words are formant-synthesised utterances (synth.say): 10 real words in 5 pairs whose phone sequences are
each other's reverse, spoken by random speakers (pitch, vocal-tract length, rate), at a random onset, over a
noise floor, sometimes over background noise or with a distractor sound. Each speaker says several words,
some more than once (`_nohash_<n>` counts repetitions). validation/testing lists are chosen by hashing the
speaker part of the file name, as the real dataset does (README "which_set"), with 20 % / 20 % here
(real: 10 % / 10 %); the demo keeps drawing random speaker hashes until each split has its share of
speakers, so no split is empty even with few speakers (clip shares then vary with how much each speaks).

Options: words (default the 10 keyword-spotting words), per_word (40), speakers (60), short_fraction (0.15 of
the clips shorter than 1 s), noise_seconds (10 s per background-noise file; real ~60 s),
validation_percentage / testing_percentage (20 / 20).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from soundbench.datasets.base import Release, Unpack, demo_rng
from soundbench.datasets.demo import synth

NAME = "speech_commands"
ARCHIVE = "speech_commands_v0.02.tar.gz"
SR = 16000
DEFAULT_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
NOISE_FILES = ("doing_the_dishes", "dude_miaowing", "exercise_bike", "pink_noise", "running_tap", "white_noise")
MAX_NUM_WAVS_PER_CLASS = 2 ** 27 - 1

README = """\
Speech Commands Data Set v0.02 -- DEMO

This archive is a SYNTHETIC stand-in for the Speech Commands v0.02 data set (Warden, 2018), written by
soundbench in the real layout: one folder per word with `<speakerhash>_nohash_<n>.wav` utterances (16 kHz,
mono, 16-bit PCM, at most one second), `_background_noise_/` with longer noise recordings, and
`validation_list.txt` / `testing_list.txt`, chosen by a hash of the speaker part of the file name.
The words are formant-synthesised; nobody's voice is in here.
"""
LICENSE = """\
The real Speech Commands data set is released under the Creative Commons BY 4.0 license
(https://creativecommons.org/licenses/by/4.0/). This synthetic demo version contains no recordings.
"""
NOISE_README = """\
Background noise files. In the real data set these are about a minute long each and are mixed into
training clips by the TensorFlow audio recognition tutorial. Here they are synthetic.
"""


def which_set(filename: str, validation_percentage: float, testing_percentage: float) -> str:
    """The real data set's rule: hash the file name without its `_nohash_...` part, map to a percentage."""
    hash_name = re.sub(r"_nohash_.*$", "", filename.rsplit("/", 1)[-1])
    digest = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    pct = (int(digest, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if pct < validation_percentage:
        return "validation"
    if pct < validation_percentage + testing_percentage:
        return "testing"
    return "training"


def _phones(word: str):
    if word in synth.WORDS:
        return synth.WORDS[word]
    if word in synth.EXTRA_WORDS:
        return synth.EXTRA_WORDS[word]
    raise ValueError(f"speech_commands demo: no synthetic pronunciation for {word!r}; "
                     f"known: {', '.join(list(synth.WORDS) + list(synth.EXTRA_WORDS))}")


def _clip(seed: int, word: str, spk: dict, key: str, short_fraction: float) -> np.ndarray:
    rng = demo_rng(seed, NAME, "clip", key)
    utt = synth.say(rng, SR, _phones(word), spk)
    length = 1.0 if rng.random() >= short_fraction else rng.uniform(0.55, 0.99)
    n = synth.nsamp(length, SR)
    if len(utt) > n - 160:  # squeeze a long utterance into the file
        utt = np.interp(np.linspace(0, len(utt) - 1, n - 160), np.arange(len(utt)), utt)
    out = np.zeros(n)
    synth.add_at(out, utt, int(rng.integers(0, n - len(utt) + 1)))
    noise = synth.colored_noise(rng, n, SR, rng.uniform(-6, 0)) * synth.db(-rng.uniform(35, 50))
    if rng.random() < 0.5:
        kind = ("generic", "room", "traffic")[rng.integers(3)]
        noise += synth.background(rng, n, SR, kind) * synth.db(-rng.uniform(5, 20))
    if rng.random() < 0.2:
        d = synth.distractor(rng, SR)[: n // 2] * synth.db(-rng.uniform(6, 16))
        synth.add_at(noise, d, int(rng.integers(0, n - len(d) + 1)))
    out = out + noise
    return out * synth.db(rng.uniform(-20, -3)) / max(np.max(np.abs(out)), 1e-9)


def _noise_recording(seed: int, name: str, seconds: float) -> np.ndarray:
    rng = demo_rng(seed, NAME, "noise", name)
    n = synth.nsamp(seconds, SR)
    if name == "white_noise":
        x = rng.standard_normal(n)
    elif name == "pink_noise":
        x = synth.colored_noise(rng, n, SR, -3.0, lo=20)
    elif name == "running_tap":
        x = synth.ev_crackle(rng, SR, seconds, 800, 7000, rate=80, tau=0.006, sustain=0.5)
    elif name == "exercise_bike":
        x = synth.ev_am_noise(rng, SR, seconds, 80, 3000, rate=1.5, whine=0.5, whine_f=160)
    else:  # doing_the_dishes, dude_miaowing: a room with events
        x = synth.background(rng, n, SR, "room") * 0.3
        ev = synth.DISTRACTORS[0] if name == "doing_the_dishes" else synth.EventClass("sweep", f=500.0, ratio=1.6,
                                                                                       dur=(0.4, 0.9))
        for _ in range(int(seconds * 1.5)):
            e = ev.draw(rng, SR)
            synth.add_at(x, e * synth.db(rng.uniform(-6, 6)), int(rng.integers(0, n - len(e))))
    return x * synth.db(-6) / max(np.max(np.abs(x)), 1e-9)


def make(out_dir: Path, seed: int = 0, *, words=DEFAULT_WORDS, per_word: int = 40, speakers: int = 60,
         short_fraction: float = 0.15, noise_seconds: float = 10.0, validation_percentage: float = 20.0,
         testing_percentage: float = 20.0) -> Release:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = demo_rng(seed, NAME, "plan")
    # speakers: random hashes, kept while their hash-chosen split still has room, so that the splits get
    # their share of speakers (and none is empty) even for a handful of speakers
    quota = {"validation": max(1, round(speakers * validation_percentage / 100)),
             "testing": max(1, round(speakers * testing_percentage / 100))}
    quota["training"] = max(1, speakers - quota["validation"] - quota["testing"])
    hashes: list[str] = []
    wanted = sum(quota.values())
    while len(hashes) < wanted:
        h = "%08x" % int(rng.integers(0, 2 ** 32))
        split = which_set(f"x/{h}_nohash_0.wav", validation_percentage, testing_percentage)
        if h not in hashes and quota[split] > 0:
            quota[split] -= 1
            hashes.append(h)
    speakers = len(hashes)
    traits = {h: synth.speaker(demo_rng(seed, NAME, "speaker", h)) for h in hashes}
    members: list[tuple[str, bytes | None]] = [("./", None)]
    lists = {"validation": [], "testing": []}
    # who says each clip: every speaker at least once (when there are enough clips), the rest at random
    words = sorted(words)
    total = len(words) * per_word
    who = list(rng.permutation(speakers)[:total]) + list(rng.integers(0, speakers, max(0, total - speakers)))
    who = [int(who[i]) for i in rng.permutation(total)]
    for w, word in enumerate(words):
        members.append((f"./{word}/", None))
        reps: dict[str, int] = {}
        names = []
        for i in range(per_word):
            h = hashes[who[w * per_word + i]]
            reps[h] = reps.get(h, -1) + 1
            names.append(f"{h}_nohash_{reps[h]}.wav")
        for fname in sorted(names):
            rel = f"{word}/{fname}"
            x = _clip(seed, word, traits[fname[:8]], rel, short_fraction)
            members.append((f"./{rel}", synth.wav_bytes(x, SR)))
            split = which_set(rel, validation_percentage, testing_percentage)
            if split != "training":
                lists[split].append(rel)
    members.append(("./_background_noise_/", None))
    members.append(("./_background_noise_/README.md", NOISE_README.encode()))
    for name in NOISE_FILES:
        members.append((f"./_background_noise_/{name}.wav",
                        synth.wav_bytes(_noise_recording(seed, name, noise_seconds), SR)))
    members.append(("./LICENSE", LICENSE.encode()))
    members.append(("./README.md", README.encode()))
    # the real v0.02 lists end without a newline after the last entry
    members.append(("./testing_list.txt", "\n".join(lists["testing"]).encode()))
    members.append(("./validation_list.txt", "\n".join(lists["validation"]).encode()))
    synth.write_tar_gz(out_dir / ARCHIVE, members)
    return Release(files=(synth.remote_file(out_dir, ARCHIVE),),
                   unpack=(Unpack(parts=(ARCHIVE,), kind="tar", dest="."),),
                   note="synthetic demo of Speech Commands v0.02")
