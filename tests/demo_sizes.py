"""Small sizes of every dataset's demo, for tests that make demo releases (tests/test_demo.py, test_fuzz_parsers.py)."""
from __future__ import annotations

SMALL = {
    "mtt": dict(clips=24, clip_seconds=2.0),
    "speech_commands": dict(words=("yes", "no", "up"), per_word=6, speakers=8, short_fraction=0.5,
                            noise_seconds=2.0, validation_percentage=30, testing_percentage=30),
    "dcase2017_task4": dict(train_clips=8, test_clips=4, eval_clips=4, clip_seconds=1.5),
    "dcase2018_task1a": dict(clips_per_scene=3, clip_seconds=0.5, locations_per_scene=2),
    "dcase2019_task1a": dict(clips_per_scene=3, clip_seconds=0.5, locations_per_scene=2),
    "dcase2018_task4": dict(weak_clips=12, test_clips=8, clip_seconds=3.0),
    "acivw": dict(videos=3, seconds=2, mics=3, classes=4),  # one 2-s sample per video
}
