"""Demo DCASE 2017 Task 4 (weakly labelled sound events for smart cars) in the real layout.

Release files, as the real sources ship them:
- `Task_4_DCASE_2017_training_set.zip` (password `DCASE_2017_training_set`), members
  `unbalanced_train_segments_training_set_audio_formatted_and_segmented_downloads/Y<file>`;
- `Task_4_DCASE_2017_testing_set.zip` (password `DCASE_2017_testing_set`), members
  `unbalanced_train_segments_testing_set_audio_formatted_and_segmented_downloads/Y<file>`;
- `DCASE_2017_evaluation_set_audio_files.zip` (password `DCASE_2017_evaluation_set`), members
  `evaluation_set_formatted_audio_segments/Y<file>`;
  all three ZipCrypto-encrypted (soundbench.fetch.extract.write_encrypted_zip), 44.1 kHz mono 16-bit WAV;
- `groundtruth_weak_label_{training,testing,evaluation}_set.csv`: TAB-separated, no header,
  `<ytid>_<start>_<end>.wav<TAB><start><TAB><end><TAB><label>`, one row per (clip, label), rows grouped by
  class in the real list's order then by file name; the evaluation file has CRLF line ends, the other two LF
  (as the real files).

Six of the 17 classes, three pairs whose members differ only in temporal order (synth.dcase2017_classes):
Train horn / "Air horn, truck horn" (struck vs swelling chord), Car alarm / Reversing beeps (rising vs falling
tone steps), "Ambulance (siren)" / "Fire engine, fire truck (siren)" (slow-rise vs fast-rise sweeps).
A clip has 1 label (60 %), 2 (30 %) or 3 (10 %), each one event of 1-3.5 s (at most the clip) at a random
time over traffic noise at a random SNR, with distractor sounds.

Options: train_clips (240), test_clips (60), eval_clips (80), clip_seconds (4.0; real 10).
"""
from __future__ import annotations

from pathlib import Path

from soundbench.datasets.base import Release, Unpack, demo_rng
from soundbench.datasets.demo import synth

NAME = "dcase2017_task4"
SR = 44100
SETS = (  # (key, zip name, password, member folder, label file)
    ("training", "Task_4_DCASE_2017_training_set.zip", "DCASE_2017_training_set",
     "unbalanced_train_segments_training_set_audio_formatted_and_segmented_downloads",
     "groundtruth_weak_label_training_set.csv"),
    ("testing", "Task_4_DCASE_2017_testing_set.zip", "DCASE_2017_testing_set",
     "unbalanced_train_segments_testing_set_audio_formatted_and_segmented_downloads",
     "groundtruth_weak_label_testing_set.csv"),
    ("evaluation", "DCASE_2017_evaluation_set_audio_files.zip", "DCASE_2017_evaluation_set",
     "evaluation_set_formatted_audio_segments", "groundtruth_weak_label_evaluation_set.csv"),
)
# the order of sound_event_list_17_classes.txt (the label files are grouped by class in this order)
LIST_ORDER = ("Train horn", "Air horn, truck horn", "Car alarm", "Reversing beeps", "Bicycle", "Skateboard",
              "Ambulance (siren)", "Fire engine, fire truck (siren)", "Civil defense siren", "Police car (siren)",
              "Screaming", "Car", "Car passing by", "Bus", "Truck", "Motorcycle", "Train")


def make(out_dir: Path, seed: int = 0, *, train_clips: int = 240, test_clips: int = 60, eval_clips: int = 80,
         clip_seconds: float = 4.0) -> Release:
    from soundbench.fetch.extract import write_encrypted_zip

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = synth.dcase2017_classes()
    names = list(classes)
    rng = demo_rng(seed, NAME, "plan")
    used: set[str] = set()
    files = []
    for (key, zname, password, folder, label_file), count in zip(SETS, (train_clips, test_clips, eval_clips)):
        rows = []
        members: dict[str, bytes] = {folder + "/": b""}
        clips = []
        for _ in range(count):
            while True:
                ytid = synth.fake_ytid(rng)
                if ytid not in used:
                    used.add(ytid)
                    break
            start = 10.0 * int(rng.integers(0, 30))
            fname = f"{ytid}_{start:.3f}_{start + clip_seconds:.3f}.wav"
            k = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
            labels = [names[i] for i in rng.choice(len(names), size=k, replace=False)]
            clips.append((fname, start, labels))
        for fname, start, labels in sorted(clips):
            crng = demo_rng(seed, NAME, "clip", fname)
            x, _ = synth.event_clip(crng, SR, clip_seconds, classes, n_events=(len(labels), len(labels)),
                                    force=labels, bg_kind="traffic", snr_db=(0.0, 15.0),
                                    event_seconds=(1.0, min(3.5, clip_seconds)))
            members[f"{folder}/Y{fname}"] = synth.wav_bytes(x, SR)
            for lab in labels:
                rows.append((LIST_ORDER.index(lab), fname, f"{fname}\t{start:.3f}\t{start + clip_seconds:.3f}\t{lab}"))
        eol = "\r\n" if key == "evaluation" else "\n"
        (out_dir / label_file).write_bytes("".join(r[2] + eol for r in sorted(rows)).encode())
        write_encrypted_zip(out_dir / zname, members, password, date_time=synth.ZIP_DATE,
                            seed=int(demo_rng(seed, NAME, "zip", key).integers(2 ** 31)))
        files.append((zname, password))
        files.append((label_file, None))
    return Release(files=tuple(synth.remote_file(out_dir, f) for f, _ in files),
                   unpack=tuple(Unpack(parts=(f,), kind="zip", password=pw, dest=".") if f.endswith(".zip")
                                else Unpack(parts=(f,), kind="file", dest=".") for f, pw in files),
                   note="synthetic demo of DCASE 2017 Task 4")
