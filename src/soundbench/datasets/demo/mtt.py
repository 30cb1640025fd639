"""Demo MagnaTagATune in the real layout: `annotations_final.csv` + `mp3.zip.001` … `mp3.zip.003`.

- The three mp3.zip parts are ONE zip cut into three byte ranges (`cat mp3.zip.* > mp3.zip` restores it);
  members `<hex>/<artist>-<album>-<track>-<title>-<start>-<end>.mp3` in the 16 folders `0` … `f`, 16 kHz mono
  MP3 at 32 kbit/s CBR (as the real clips; libsndfile's LAME, which is deterministic: same samples, same bytes).
  All clips of an album sit in one folder, as in the real set, so the split by folder (0–b train, c validation,
  d–f test) never splits a song. Segments are named like the real ones (`-0-29`, `-30-59`, `-59-88`, … for
  29-s clips; here the step is clip_seconds).
- annotations_final.csv is formatted like the real file: TAB-separated, EVERY field in double quotes,
  CRLF line ends; header `"clip_id"`, the tag columns (50 real MTT tag names; the real file has 188),
  `"mp3_path"`; values "0"/"1"; rows ordered by clip_id (increasing, with gaps, as real ids).

Music: synth.music_song / music_clip. Albums have a genre (classical, techno, rock, ambient, pop); songs add
tempo, key and instruments (piano and strings share their partials and differ only in the note envelope,
strike vs. swell; slow/fast is the tempo). Tags follow from these and are then dropped at random per clip
(the real crowd annotation misses many), so ~10 tags are frequent, several rare (violin, opera, male,
female, quiet, pop…) and most of the 50 columns unused, as in the real file.

Options: clips (320), clip_seconds (6.0; real 29.1), kbps (32), tag_keep (probability that a true tag is
annotated, 0.85).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from soundbench.datasets.base import Release, Unpack, demo_rng
from soundbench.datasets.demo import synth

NAME = "mtt"
SR = 16000
PARTS = ("mp3.zip.001", "mp3.zip.002", "mp3.zip.003")
ANNOTATIONS = "annotations_final.csv"
# real MTT tag names (the 50 most frequent of the 188, in the order of the top-50 list commonly used)
TAG_COLUMNS = ("guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
               "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
               "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal",
               "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance",
               "male voice", "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal",
               "female voice", "choral")
HEX = "0123456789abcdef"

_ADJ = ("crimson", "quiet", "northern", "electric", "hollow", "golden", "velvet", "distant", "silver", "broken",
        "amber", "wandering", "solar", "paper", "iron", "lunar", "hidden", "bright", "copper", "silent")
_NOUN = ("rivers", "harbour", "lights", "orchard", "machines", "echoes", "gardens", "circuit", "tide", "lanterns",
         "mirrors", "engines", "voices", "forest", "canyon", "signal", "meadow", "station", "comets", "bells")
_ENSEMBLE = ("ensemble", "trio", "quartet", "collective", "project", "orchestra", "band", "sound_system")


def _name(rng, parts) -> str:
    return "_".join(str(p[rng.integers(len(p))]) for p in parts)


def make(out_dir: Path, seed: int = 0, *, clips: int = 320, clip_seconds: float = 6.0, kbps: int = 32,
         tag_keep: float = 0.85) -> Release:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = demo_rng(seed, NAME, "plan")
    L = max(1, int(round(clip_seconds)))
    # albums (each in one folder, one genre) -> songs -> consecutive segments (clips)
    plan = []  # (folder, path, song dict, tag set)
    albums = []
    n = 0
    while n < clips:
        songs = int(rng.integers(1, 4))
        segs = [int(rng.integers(2, 5)) for _ in range(songs)]
        albums.append((songs, segs))
        n += sum(segs)
    folder_order = [HEX[i] for i in rng.permutation(16)]
    # album genres in proportion to the genre priors (a random draw per album varies too much for ~70 albums)
    prior = np.array([synth.MUSIC_GENRES[g][0] for g in synth.MUSIC_GENRES])
    quota = np.floor(prior / prior.sum() * len(albums) + rng.random(len(prior))).astype(int)
    genres = [g for g, q in zip(synth.MUSIC_GENRES, quota) for _ in range(q)]
    while len(genres) < len(albums):
        genres.append(synth.music_genre(rng))
    genres = [genres[i] for i in rng.permutation(len(genres))][:len(albums)]
    # albums dealt round the 16 folders genre by genre, so every split gets its share of every genre
    by_genre = sorted(range(len(albums)), key=lambda i: (list(synth.MUSIC_GENRES).index(genres[i]), i))
    folder_of = {album: folder_order[rank % 16] for rank, album in enumerate(by_genre)}
    clip_id, made = 0, 0
    used: set[tuple[str, str]] = set()
    for a, (songs, segs) in enumerate(albums):
        folder = folder_of[a]
        while True:
            artist = _name(rng, (_ADJ, _NOUN)) if rng.random() < 0.6 else _name(rng, (_ADJ, _NOUN, _ENSEMBLE))
            album = _name(rng, (_ADJ, _NOUN))
            if (artist, album) not in used:
                used.add((artist, album))
                break
        genre = genres[a]
        for s in range(songs):
            title = _name(rng, (_NOUN, _ADJ)) if rng.random() < 0.5 else _name(rng, (_ADJ, _NOUN))
            song = synth.music_song(rng, genre)
            for k in range(segs[s]):
                if made >= clips:
                    break
                clip_id += int(rng.integers(1, 4))
                start = 0 if k == 0 else 1 + L * k
                path = f"{folder}/{artist}-{album}-{s + 1:02d}-{title}-{start}-{start + L}.mp3"
                tags = {t for t in song["tags"] if rng.random() < tag_keep}
                plan.append((clip_id, path, song, tags))
                made += 1

    lines = ["\t".join(f'"{c}"' for c in ("clip_id",) + TAG_COLUMNS + ("mp3_path",))]
    for cid, path, _, tags in plan:
        vals = [str(cid)] + ["1" if t in tags else "0" for t in TAG_COLUMNS] + [path]
        lines.append("\t".join(f'"{v}"' for v in vals))
    (out_dir / ANNOTATIONS).write_bytes(("\r\n".join(lines) + "\r\n").encode())

    whole = out_dir / "mp3.zip"
    with synth.ZipWriter(whole) as z:
        for cid, path, song, _ in sorted(plan, key=lambda p: p[1]):
            crng = demo_rng(seed, NAME, "clip", path)
            x, _ = synth.music_clip(crng, SR, clip_seconds, song)
            z.add(path, synth.mp3_bytes(x, SR, kbps))
    data = whole.read_bytes()
    whole.unlink()
    cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    for i, part in enumerate(PARTS):
        (out_dir / part).write_bytes(data[cut[i]:cut[i + 1]])
    files = (ANNOTATIONS,) + PARTS
    return Release(files=tuple(synth.remote_file(out_dir, f) for f in files),
                   unpack=(Unpack(parts=(ANNOTATIONS,), kind="file", dest="."),
                           Unpack(parts=PARTS, kind="zip", dest="mp3")),
                   note="synthetic demo of MagnaTagATune")
