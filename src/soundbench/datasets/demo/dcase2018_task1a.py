"""Demo TUT Urban Acoustic Scenes 2018 (DCASE 2018 Task 1A development set) in the real layout.

Release files: `TUT-urban-acoustic-scenes-2018-development.doc.zip`, `.meta.zip`, `.audio.1.zip`,
`.audio.2.zip` (the real set has 13 audio zips), every member under `TUT-urban-acoustic-scenes-2018-development/`:
`audio/<scene>-<city>-<location>-<segment>-a.wav` (48 kHz, STEREO, 24-bit PCM), `meta.csv` (TAB, header
`filename scene_label identifier source_label`), `evaluation_setup/fold1_train.txt`, `fold1_evaluate.txt`
(TAB, no header: `audio/x.wav<TAB>scene`) and `fold1_test.txt` (file names only), `README.md`, `LICENSE`.

The 10 real scenes, each recorded at several locations in the real cities; fold 1 puts every location
wholly in train or in evaluate (about 70/30 of the clips, as the real split). Audio: synth.scene_clip — a
pair-structured scene texture (two scenes of a pair share background and event inventory, the second hears
the events reversed) with scene-dependent stereo (panning width, inter-channel delay, background coherence),
and location-dependent colour and level.

Options: clips_per_scene (16), clip_seconds (3.0; real 10), locations_per_scene (5), evaluate_fraction (0.3).
The DCASE 2019 demo (dcase2019_task1a.py) uses the same writer with the 2019 names.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from soundbench.datasets.base import Release, Unpack, demo_rng
from soundbench.datasets.demo import synth

NAME = "dcase2018_task1a"
TOP = "TUT-urban-acoustic-scenes-2018-development"
SR = 48000
CITIES = ("barcelona", "helsinki", "london", "paris", "stockholm", "vienna")

LICENSE = """\
The real TUT Urban Acoustic Scenes development data sets are copyright Tampere University of Technology
and are free for academic, non-commercial use with attribution. This archive is a SYNTHETIC demo written
by soundbench in the same layout; it contains no recordings.
"""


def _readme(top: str) -> str:
    return (f"# {top} (synthetic demo)\n\nThe real layout: `audio/<scene>-<city>-<location>-<segment>-a.wav` "
            "(48 kHz, stereo, 24-bit), `meta.csv`, and the fold-1 setup in `evaluation_setup/`.\n"
            "Locations are never shared between fold-1 train and evaluate.\n")


def _plan(seed: int, name: str, clips_per_scene: int, locations_per_scene: int, evaluate_fraction: float,
          cities, new_cities=()):
    """Clip names, location ids and fold-1 membership, deterministic for the seed.

    Cities in `new_cities` are named the DCASE-2019 way (location ids from 1000 and global segment ids from
    40000); the others the 2018 way (small location ids per city, segment ids counting within a location).
    """
    rng = demo_rng(seed, name, "plan")
    loc_counter = {c: 0 for c in cities}
    new_loc, new_seg = 1000, 40000
    clips = []  # dicts: file, scene, identifier, location key, fold
    for scene in synth.SCENES:
        nloc = max(2, min(locations_per_scene, clips_per_scene))
        # segments per location: every location gets at least one
        counts = np.ones(nloc, int)
        extra = rng.multinomial(clips_per_scene - nloc, rng.dirichlet(np.full(nloc, 3.0)))
        counts += extra
        # evaluate locations: in random order, take a location when it brings the share closer to the target
        order = rng.permutation(nloc)
        target = evaluate_fraction * clips_per_scene
        evaluate, got = set(), 0
        for i in order:
            if len(evaluate) == nloc - 1:
                break
            if not evaluate or abs(got + counts[i] - target) < abs(got - target):
                evaluate.add(int(i))
                got += counts[i]
        for i in range(nloc):
            city = cities[int(rng.integers(len(cities)))]
            if city in new_cities:
                loc = new_loc
                new_loc += 1
            else:
                loc = loc_counter[city]
                loc_counter[city] += 1
            for j in range(counts[i]):
                if city in new_cities:
                    seg = new_seg
                    new_seg += 1
                else:
                    seg = j
                clips.append({"file": f"audio/{scene}-{city}-{loc}-{seg}-a.wav", "scene": scene,
                              "identifier": f"{city}-{loc}", "fold": "evaluate" if i in evaluate else "train"})
    return clips


def make_scenes(out_dir: Path, seed: int, *, name: str, top: str, cities, new_cities=(), fold_ext: str,
                fold_header: bool, clips_per_scene: int, clip_seconds: float, locations_per_scene: int,
                evaluate_fraction: float, audio_zips: int = 2) -> Release:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = _plan(seed, name, clips_per_scene, locations_per_scene, evaluate_fraction, cities, new_cities)
    files = []

    doc = f"{top}.doc.zip"
    with synth.ZipWriter(out_dir / doc) as z:
        z.add(f"{top}/LICENSE", LICENSE.encode())
        z.add(f"{top}/README.md", _readme(top).encode())
    files.append(doc)

    meta = f"{top}.meta.zip"
    rows = ["filename\tscene_label\tidentifier\tsource_label"]
    rows += [f"{c['file']}\t{c['scene']}\t{c['identifier']}\ta" for c in clips]
    train = sorted((c["file"], c["scene"]) for c in clips if c["fold"] == "train")
    evaluate = sorted((c["file"], c["scene"]) for c in clips if c["fold"] == "evaluate")

    def table(pairs, with_label: bool) -> bytes:
        head = (["filename\tscene_label"] if with_label else ["filename"]) if fold_header else []
        body = [f"{f}\t{s}" if with_label else f for f, s in pairs]
        return ("\n".join(head + body) + "\n").encode()

    with synth.ZipWriter(out_dir / meta) as z:
        z.add(f"{top}/evaluation_setup/fold1_evaluate.{fold_ext}", table(evaluate, True))
        z.add(f"{top}/evaluation_setup/fold1_test.{fold_ext}", table(evaluate, False))
        z.add(f"{top}/evaluation_setup/fold1_train.{fold_ext}", table(train, True))
        z.add(f"{top}/meta.csv", ("\n".join(rows) + "\n").encode())
    files.append(meta)

    locs = {c["identifier"]: None for c in clips}
    for ident in locs:
        locs[ident] = synth.scene_location(demo_rng(seed, name, "location", ident))
    ordered = sorted(clips, key=lambda c: c["file"])
    per_zip = -(-len(ordered) // audio_zips)
    for k in range(audio_zips):
        fname = f"{top}.audio.{k + 1}.zip"
        with synth.ZipWriter(out_dir / fname) as z:
            for c in ordered[k * per_zip:(k + 1) * per_zip]:
                rng = demo_rng(seed, name, "clip", c["file"])
                x = synth.scene_clip(rng, SR, clip_seconds, c["scene"], locs[c["identifier"]])
                # stored: deflate saves under 10 % on 24-bit noisy audio and costs more time than it saves
                z.add(f"{top}/{c['file']}", synth.wav_bytes(x, SR, "PCM_24"), compress=False)
        files.append(fname)
    return Release(files=tuple(synth.remote_file(out_dir, f) for f in files),
                   unpack=tuple(Unpack(parts=(f,), kind="zip", dest=".") for f in files),
                   note=f"synthetic demo of {top}")


def make(out_dir: Path, seed: int = 0, *, clips_per_scene: int = 16, clip_seconds: float = 3.0,
         locations_per_scene: int = 5, evaluate_fraction: float = 0.3) -> Release:
    return make_scenes(out_dir, seed, name=NAME, top=TOP, cities=CITIES, fold_ext="txt", fold_header=False,
                       clips_per_scene=clips_per_scene, clip_seconds=clip_seconds,
                       locations_per_scene=locations_per_scene, evaluate_fraction=evaluate_fraction)
