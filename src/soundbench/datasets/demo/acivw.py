"""Demo ACIVW (ACoustic Images and Videos in the Wild) in the raw layout the IIT converter reads.

`ACIVW.zip` (kind "zip", dest "."; the real data set is sent on request, no download) holds
`class_<k>/data_<nnn>/` for the 10 classes (train, boat, drone, fountain, drill, razor, hair dryer, hoover,
shopping cart, traffic), one folder per video (nnn: the 3-digit video/location id, drawn from 0..60), with one
file of each kind per video frame at 12 frames/s, numbered from 1 as IIT-PAVIS convert_data.py reads them:
- `audio/A_<6-digit>.dc`: raw little-endian int32, a (mics x 1024) array in Fortran order (sample-major,
  mics interleaved); 1024 samples per 1/12 s = 12,288 Hz. The real array has 128 microphones, which would
  make the demo hundreds of MB: the demo writes `mics` = 4 by default (parsers infer the count from the file
  size: bytes / 4 / 1024). Mic 0 hears the class's source plus a diffuse distractor (another class's
  sound, at -12..0 dB relative to the source: audio alone is ambiguous); the other mics hear the source
  delayed by its position. Values peak at 2**17 (inside a 24-bit range).
- `MFCC_Image/Data_<n>.mat` (no zero padding): MATLAB v5 file (scipy.io.savemat, uncompressed as MATLAB's
  -v6, fixed header text so the bytes are reproducible) with variable `MFCC`, float32 36 x 48 x 12: the
  simulated array's map of the frame, the source's 12 band amplitudes spread by a frequency-dependent
  point-spread function at the source position, the distractor spread evenly (synth.acivw_recording).
- `video/I_<6-digit>.bmp`: small RGB frames (64 x 48) showing the class's object (colour, shape) at the
  source position, which moves across the view during the video, over the class's background (jittered) with a
  per-video contrast.
A video lasts `seconds` whole seconds plus 0-5 spare frames (the converter and framecount.py use
floor(frames / 12) seconds, so spare frames belong to no record).
- `lists/{training,validation,testing}.txt`: one line per whole second,
  `/Dataset/class_<k>/data_<nnn>/Data_<sss>.tfrecord` (sss 1-based, 3 digits), split by video, trailing newline.

Options: videos (per class, 3: one each for training / validation / testing; with more, ~50/20/30),
seconds (4 per video), mics (4), video_size ((64, 48) width x height), classes (10: the first N classes).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from soundbench.datasets.base import Release, Unpack, demo_rng
from soundbench.datasets.demo import synth

NAME = "acivw"
ARCHIVE = "ACIVW.zip"
FPS = 12
HOP = 1024
SR = FPS * HOP  # 12,288 Hz
CLASSES = synth.ACIVW_CLASSES
_MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Wed Jan  1 00:00:00 2020"


def mat_bytes(mfcc: np.ndarray) -> bytes:
    """An uncompressed MATLAB v5 file (MATLAB's `-v6`; the zip compresses it, 5x faster than scipy's
    compressed variant) holding `MFCC`, with a fixed header text (scipy writes the current time there)."""
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, {"MFCC": mfcc}, do_compression=False, format="5")
    data = bytearray(buf.getvalue())
    data[:116] = _MAT_HEADER.ljust(116, b" ")
    return bytes(data)


def bmp_bytes(frame: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame, "RGB").save(buf, format="BMP")
    return buf.getvalue()


def _splits(rng, videos: int) -> list[str]:
    if videos >= 3:
        n_test, n_val = max(1, round(0.3 * videos)), max(1, round(0.2 * videos))
    else:
        n_test, n_val = (1 if videos >= 2 else 0), 0
    out = ["testing"] * n_test + ["validation"] * n_val
    out += ["training"] * (videos - len(out))
    return [out[i] for i in rng.permutation(videos)]


def make(out_dir: Path, seed: int = 0, *, videos: int = 3, seconds: int = 4, mics: int = 4,
         video_size: tuple[int, int] = (64, 48), classes: int = 10) -> Release:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = demo_rng(seed, NAME, "plan")
    lists = {"training": [], "validation": [], "testing": []}
    w, h = video_size
    with synth.ZipWriter(out_dir / ARCHIVE, compresslevel=1) as z:
        n_classes = min(max(classes, 1), len(CLASSES))
        for k in range(n_classes):
            ids = sorted(int(i) for i in rng.choice(61, size=videos, replace=False))
            splits = _splits(rng, videos)
            for vid, split in zip(ids, splits):
                base = f"class_{k}/data_{vid:03d}"
                frames = seconds * FPS + int(rng.integers(0, 6))
                vrng = demo_rng(seed, NAME, "video", base)
                audio, images, video = synth.acivw_recording(vrng, k, frames, mics=mics, sr=SR, hop=HOP,
                                                             video_hw=(h, w), n_classes=n_classes)
                pcm = np.round(audio / np.max(np.abs(audio)) * 2 ** 17).astype("<i4")  # (mics, n), well inside 24 bits
                for f in range(frames):
                    block = pcm[:, f * HOP:(f + 1) * HOP]  # (mics, 1024)
                    z.add(f"{base}/audio/A_{f + 1:06d}.dc", np.asfortranarray(block).tobytes(order="F"))
                for f in range(frames):
                    z.add(f"{base}/MFCC_Image/Data_{f + 1}.mat", mat_bytes(images[f]))
                for f in range(frames):
                    z.add(f"{base}/video/I_{f + 1:06d}.bmp", bmp_bytes(video[f]))
                for s in range(frames // FPS):
                    lists[split].append(f"/Dataset/{base}/Data_{s + 1:03d}.tfrecord")
        for name in ("training", "validation", "testing"):
            z.add(f"lists/{name}.txt", "".join(line + "\n" for line in lists[name]).encode())
    return Release(files=(synth.remote_file(out_dir, ARCHIVE),),
                   unpack=(Unpack(parts=(ARCHIVE,), kind="zip", dest="."),),
                   note="synthetic demo of ACIVW (the real data set is available from IIT on request)")
