"""Audio I/O and the waveform steps every feature starts from: decode, resample, channel map, fit length.

All waveforms are float32 arrays of shape (channels, samples).
"""
from __future__ import annotations

import math
import os
import shutil
from typing import Literal

import numpy as np

# soxr "HQ" is what librosa >= 0.10 uses by default (res_type="soxr_hq"). It is recorded in every shard as
# the `resampler` attribute, because a different resampler changes the features. (SampleCNN's original code
# used librosa's old default "kaiser_best" through resampy; that is a documented deviation.)
RESAMPLER = "soxr_hq"

CHANNEL_MODES = ("mono", "left", "right", "stereo", "lrd")
PAD_MODES = ("zero", "loop", "repeat")

ChannelMode = Literal["mono", "left", "right", "stereo", "lrd"]
PadMode = Literal["zero", "loop", "repeat"]


class DecodeError(RuntimeError):
    """Neither soundfile nor ffmpeg could decode a file; the message names the file and both reasons."""


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def decode_soundfile(path: str, start: float, duration: float | None) -> tuple[np.ndarray, int]:
    """Decode with libsndfile (wav, flac, ogg/vorbis/opus, mp3, ...). Returns ((C, N) float32, sr)."""
    import soundfile as sf

    with sf.SoundFile(path) as f:
        sr = int(f.samplerate)
        first = int(round(start * sr))
        if first:
            f.seek(first)
        frames = -1 if duration is None else int(round(duration * sr))
        data = f.read(frames, dtype="float32", always_2d=True)  # (N, C)
    return np.ascontiguousarray(data.T), sr


def _decode_ffmpeg(path: str, start: float, duration: float | None) -> tuple[np.ndarray, int]:
    """Decode any format the ffmpeg binary knows, piping float32 little-endian samples. ((C, N), sr)."""
    import ffmpeg  # ffmpeg-python; needs the `ffmpeg` and `ffprobe` binaries on PATH

    info = ffmpeg.probe(path)
    stream = next((s for s in info.get("streams", []) if s.get("codec_type") == "audio"), None)
    if stream is None:
        raise ValueError("no audio stream")
    sr, channels = int(stream["sample_rate"]), int(stream["channels"])
    in_args = {"ss": start} if start else {}
    if duration is not None:
        in_args["t"] = duration
    out, _ = (ffmpeg.input(path, **in_args)
              .output("pipe:", format="f32le", acodec="pcm_f32le", ac=channels, ar=sr)
              .run(capture_stdout=True, capture_stderr=True))
    data = np.frombuffer(out, dtype="<f4").astype(np.float32)
    data = data[: len(data) // channels * channels].reshape(-1, channels)
    return np.ascontiguousarray(data.T), sr


def _reason(exc: BaseException) -> str:
    stderr = getattr(exc, "stderr", None)  # ffmpeg.Error carries the tool's stderr
    if stderr:
        tail = stderr.decode(errors="replace").strip().splitlines()[-1:]
        return f"{type(exc).__name__}: {' '.join(tail)}"
    return f"{type(exc).__name__}: {exc}"


def decode(path: str | os.PathLike, start: float = 0.0, duration: float | None = None) -> tuple[np.ndarray, int]:
    """Decode `duration` seconds (None: to the end) from `start` seconds of an audio file.

    Returns (float32 array (channels, samples), sample_rate) at the file's own rate. soundfile first;
    ffmpeg as a fallback for formats libsndfile lacks or files it fails on. NaN start/duration (as in
    manifests) mean 0 / to the end. Raises DecodeError naming the file and both reasons.
    """
    path = os.fspath(path)
    start = 0.0 if _is_missing(start) else float(start)
    duration = None if _is_missing(duration) else float(duration)
    if not os.path.exists(path):
        raise DecodeError(f"cannot decode {path}: file does not exist")
    try:
        return decode_soundfile(path, start, duration)
    except Exception as exc:  # noqa: BLE001 - any libsndfile failure means: try ffmpeg
        sf_reason = _reason(exc)
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if missing:
        ff_reason = f"{' and '.join(missing)} not found on PATH"
    else:
        try:
            return _decode_ffmpeg(path, start, duration)
        except Exception as exc:  # noqa: BLE001
            ff_reason = _reason(exc)
    raise DecodeError(f"cannot decode {path}: soundfile: {sf_reason}; ffmpeg: {ff_reason}")


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample (C, N) float32 from sr_in to sr_out with soxr HQ (see RESAMPLER). Returns (C, M) float32."""
    if int(sr_in) == int(sr_out):
        return x
    import soxr

    y = soxr.resample(np.ascontiguousarray(x.T), int(sr_in), int(sr_out), quality="HQ")  # soxr wants (N, C)
    return np.ascontiguousarray(np.asarray(y, dtype=np.float32).reshape(-1, x.shape[0]).T)


def to_channels(x: np.ndarray, mode: ChannelMode) -> np.ndarray:
    """Map (C, N) to the channels a system uses.

    mono: (1, N) mean of all channels; left / right: (1, N) (a mono input serves as both);
    stereo: (2, N) L, R (mono duplicated); lrd: (3, N) L, R, L−R (SeNoT; zero third channel for mono input).
    """
    if mode not in CHANNEL_MODES:
        raise ValueError(f"unknown channel mode {mode!r}, expected one of {CHANNEL_MODES}")
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"expected a (channels, samples) array, got shape {x.shape}")
    left = x[0]
    right = x[1] if x.shape[0] > 1 else x[0]
    if mode == "mono":
        out = x.mean(axis=0, keepdims=True)
    elif mode == "left":
        out = left[None]
    elif mode == "right":
        out = right[None]
    elif mode == "stereo":
        out = np.stack([left, right])
    else:
        out = np.stack([left, right, left - right])
    return np.ascontiguousarray(out, dtype=np.float32)


def fit_length(x: np.ndarray, n: int, pad: PadMode = "zero") -> np.ndarray:
    """Crop or pad (C, N) to (C, n) samples.

    zero: pad with silence at the end; loop: tile the clip until n;
    repeat: SampleCNN's original `np.repeat(audio, n // N + 1)[:n]` (lib/data/audio.py) — every SAMPLE is held
    k = n // N + 1 times, i.e. a sample-and-hold time-stretch, not a loop ([1, 2] -> [1, 1, 1, 2] for n = 4).
    Kept because it is what the published system trained on; k is one more than ceil(n / N) when N divides n.
    """
    if pad not in PAD_MODES:
        raise ValueError(f"unknown pad mode {pad!r}, expected one of {PAD_MODES}")
    length = x.shape[-1]
    if length >= n:
        return x[..., :n]
    if length == 0 or pad == "zero":
        return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - length)])
    if pad == "loop":
        return np.tile(x, (1,) * (x.ndim - 1) + (-(-n // length),))[..., :n]
    return np.repeat(x, n // length + 1, axis=-1)[..., :n]
