"""Demo TAU Urban Acoustic Scenes 2019 (DCASE 2019 Task 1A development set) in the real layout.

Release files: `TAU-urban-acoustic-scenes-2019-development.doc.zip`, `.meta.zip`, `.audio.1.zip`,
`.audio.2.zip` (the real set has 21 audio zips), members under `TAU-urban-acoustic-scenes-2019-development/`:
`audio/<scene>-<city>-<location>-<segment>-a.wav` (48 kHz, STEREO, 24-bit PCM), `meta.csv` (TAB, header
`filename scene_label identifier source_label`, identifier e.g. `lisbon-1000`),
`evaluation_setup/fold1_{train,evaluate,test}.csv` (TAB, WITH a header: `filename scene_label`; test:
`filename`), `README.md`, `LICENSE`.

The 10 real cities. As in the real set, locations of the cities that were already in the 2018 set are
named the 2018 way (`airport-barcelona-0-3-a.wav`: location 0 of the city, segment 3 of the location) and
the new cities the 2019 way (`airport-lisbon-1000-40000-a.wav`: global location ids from 1000, global
segment ids from 40000). Fold 1 splits by location, ~70/30. Audio: see dcase2018_task1a.py / synth.scene_clip.

Options: clips_per_scene (16), clip_seconds (3.0; real 10), locations_per_scene (5), evaluate_fraction (0.3).
"""
from __future__ import annotations

from pathlib import Path

from soundbench.datasets.base import Release
from soundbench.datasets.demo.dcase2018_task1a import make_scenes

NAME = "dcase2019_task1a"
TOP = "TAU-urban-acoustic-scenes-2019-development"
CITIES = ("barcelona", "helsinki", "lisbon", "london", "lyon", "milan", "paris", "prague", "stockholm", "vienna")
NEW_CITIES = ("lisbon", "lyon", "milan", "prague")


def make(out_dir: Path, seed: int = 0, *, clips_per_scene: int = 16, clip_seconds: float = 3.0,
         locations_per_scene: int = 5, evaluate_fraction: float = 0.3) -> Release:
    return make_scenes(out_dir, seed, name=NAME, top=TOP, cities=CITIES, new_cities=NEW_CITIES, fold_ext="csv",
                       fold_header=True, clips_per_scene=clips_per_scene, clip_seconds=clip_seconds,
                       locations_per_scene=locations_per_scene, evaluate_fraction=evaluate_fraction)
