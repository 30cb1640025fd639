"""Demo DCASE 2018 Task 4 (weakly labelled sound event detection in domestic environments), real layout.

Release files:
- `weak.csv` (Unpack kind "file" -> `metadata/train`): TAB, header `filename<TAB>event_labels`, labels of a
  clip sorted and comma-joined (`Alarm_bell_ringing,Dog,Speech`), rows grouped by that label string, as the
  real file;
- `test.csv` (-> `metadata/test`): TAB, header `filename<TAB>onset<TAB>offset<TAB>event_label`, the STRONG
  labels: the true extent of every synthesised event (its waveform is non-zero exactly there), several rows
  per clip, rows sorted by file name (case-insensitively) then onset, 3 decimals, as the real file;
- `audio.zip` (the official release has no audio, YouTube; kind "zip", dest "."): `audio/train/weak/<file>` and
  `audio/test/<file>`, `Y<ytid>_<start>_<end>.wav`, 44.1 kHz mono 16-bit.

The 10 classes (synth.dcase2018_classes): Dog/Cat (falling vs rising barks), Frying/Running_water (crackles
with sharp attack vs sharp release), Vacuum_cleaner/Blender (motor noise with sawtooth vs reversed-sawtooth
pulsation) are pairs; Alarm_bell_ringing, Speech (formant words), Dishes and Electric_shaver_toothbrush
stand alone. A clip has 1 label (55 %), 2 (35 %) or 3 (10 %); each label gets 1-2 events (>= 250 ms; events
of one class never closer than 150 ms, the task's merge rule) at random times, over room noise at a
random SNR, with distractor sounds.

Options: weak_clips (200), test_clips (60), clip_seconds (5.0; real 10).
"""
from __future__ import annotations

from pathlib import Path

from soundbench.datasets.base import Release, Unpack, demo_rng
from soundbench.datasets.demo import synth

NAME = "dcase2018_task4"
SR = 44100
AUDIO_ZIP = "audio.zip"


def _clip_plan(rng, names):
    k = int(rng.choice([1, 2, 3], p=[0.55, 0.35, 0.10]))
    labels = [names[i] for i in rng.choice(len(names), size=k, replace=False)]
    force = []
    for lab in labels:
        force += [lab] * int(rng.choice([1, 2], p=[0.7, 0.3]))
    return force


def make(out_dir: Path, seed: int = 0, *, weak_clips: int = 200, test_clips: int = 60,
         clip_seconds: float = 5.0) -> Release:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = synth.dcase2018_classes()
    names = list(classes)
    rng = demo_rng(seed, NAME, "plan")
    used: set[str] = set()

    def fresh_name() -> str:
        while True:
            ytid = synth.fake_ytid(rng)
            if ytid not in used:
                used.add(ytid)
                break
        start = 10.0 * int(rng.integers(0, 30))
        return f"Y{ytid}_{start:.3f}_{start + clip_seconds:.3f}.wav"

    plan = {"weak": [(fresh_name(), _clip_plan(rng, names)) for _ in range(weak_clips)],
            "test": [(fresh_name(), _clip_plan(rng, names)) for _ in range(test_clips)]}
    weak_rows, test_rows = [], []
    with synth.ZipWriter(out_dir / AUDIO_ZIP, compresslevel=1) as z:
        for subset, folder in (("weak", "audio/train/weak"), ("test", "audio/test")):
            for fname, force in sorted(plan[subset]):
                crng = demo_rng(seed, NAME, "clip", fname)
                # min_event a hair above 250 ms so that the 3-decimal rounding of test.csv keeps >= 0.250 s
                x, events = synth.event_clip(crng, SR, clip_seconds, classes, n_events=(len(force), len(force)),
                                             min_event=0.251, force=force, bg_kind="room", snr_db=(3.0, 20.0))
                z.add(f"{folder}/{fname}", synth.wav_bytes(x, SR))
                if subset == "weak":
                    weak_rows.append((fname, ",".join(sorted({c for _, _, c in events}))))
                else:
                    test_rows += [(fname, a, b, c) for a, b, c in events]
    weak_rows.sort(key=lambda r: (r[1], r[0]))
    test_rows.sort(key=lambda r: (r[0].lower(), r[1], r[3]))
    (out_dir / "weak.csv").write_text("filename\tevent_labels\n" + "".join(f"{f}\t{labs}\n" for f, labs in weak_rows))
    (out_dir / "test.csv").write_text("filename\tonset\toffset\tevent_label\n"
                                      + "".join(f"{f}\t{a:.3f}\t{b:.3f}\t{c}\n" for f, a, b, c in test_rows))
    files = ("weak.csv", "test.csv", AUDIO_ZIP)
    return Release(files=tuple(synth.remote_file(out_dir, f) for f in files),
                   unpack=(Unpack(parts=("weak.csv",), kind="file", dest="metadata/train"),
                           Unpack(parts=("test.csv",), kind="file", dest="metadata/test"),
                           Unpack(parts=(AUDIO_ZIP,), kind="zip", dest=".")),
                   note="synthetic demo of DCASE 2018 Task 4 (metadata and audio)")
