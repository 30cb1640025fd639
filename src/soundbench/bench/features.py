"""`soundbench bench features`: our spectrograms against librosa on one core, and audio decoding apart.

For every spectral feature spec of the published systems, the same test audio goes through `logmel()` and
through librosa with the same parameters (window array, framing, mel filters, log). Reported: throughput of
each in audio-seconds per second (one core, one thread), their ratio, and the largest difference of the
outputs (log units; for a spec without log, relative to the clip's peak). Decoding (wav, mp3; soundfile vs
ffmpeg) and resampling are timed on their own, since on real data they can cost more than the features.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from soundbench.bench import report
from soundbench.features.paper_specs import PAPER_SPECS, paper_spec
from soundbench.features.spec import FeatureSpec

RATIO_GOAL = 3.0
PARITY_GOAL = 1e-3


def test_audio(channels: int, seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """(C, N) float32 that exercises the hard cases of parity, not only loud noise: coloured noise under a
    slow envelope, tones, a stretch band-limited to a quarter of the rate (like upsampled audio) and one of
    digital silence."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    white = rng.standard_normal((channels, n))
    pink = np.fft.irfft(np.fft.rfft(white) / np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)), n)
    x = 0.3 * pink / pink.std() * (0.55 + 0.45 * np.sin(2 * np.pi * 0.3 * t))
    x += 0.1 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 3520 * t + 1.0)
    third = n // 3
    spec = np.fft.rfft(x[:, third:2 * third])
    spec[:, int(spec.shape[-1] / 2):] = 0  # no energy above sr/4 in the middle third
    x[:, third:2 * third] = np.fft.irfft(spec, third)
    x[:, int(0.8 * n):int(0.9 * n)] = 0.0
    return x.astype(np.float32)


def librosa_reference(x: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The spec computed with librosa 0.11 (float64 FFT), channel by channel: (C, N) -> (C, n_bins, T)."""
    import librosa

    from soundbench.features.logmel import window

    spec = spec.resolved()
    win = window(spec)  # an n_fft-long window array: the same framing whatever win_length and win_align
    if spec.win_align == "left" and spec.win_length < spec.n_fft:
        x = np.pad(x, [(0, 0), (0, spec.n_fft - spec.win_length)])
    out = []
    for channel in x:
        stft = librosa.stft(channel, n_fft=spec.n_fft, hop_length=spec.hop_length, window=win,
                            center=spec.center, pad_mode=spec.pad_mode)
        s = np.abs(stft) ** spec.power
        if spec.kind == "logmel":
            s = librosa.feature.melspectrogram(S=s, sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels,
                                               fmin=spec.fmin, fmax=spec.fmax, htk=spec.mel_scale == "htk",
                                               norm=None if spec.mel_norm == "none" else spec.mel_norm)
        if spec.n_frames is not None:
            short = spec.n_frames - s.shape[1]
            s = s[:, :spec.n_frames] if short <= 0 else np.pad(s, [(0, 0), (0, short)])
        if spec.log == "db":
            to_db = librosa.power_to_db if spec.power == 2.0 else librosa.amplitude_to_db
            s = to_db(s, ref=1.0, amin=spec.log_eps, top_db=spec.top_db)
        elif spec.log in ("ln", "log10"):
            s = (np.log if spec.log == "ln" else np.log10)(s + spec.log_eps)
        out.append(s)
    return np.stack(out).astype(np.float32)


def parity(ours: np.ndarray, ref: np.ndarray, spec: FeatureSpec) -> float:
    """Largest |ours - ref|: in log units, or relative to the reference's peak for a spec without log."""
    diff = float(np.abs(ours.astype(np.float64) - ref).max())
    return diff / float(np.abs(ref).max()) if spec.log == "none" else diff


def _cases(quick: bool) -> list[tuple[str, str, FeatureSpec]]:
    """(name, system, spec) of every spectral spec of the published systems (+ SubSpectralNet's 200 mels)."""
    cases = [(name, system, paper_spec(name)) for name, (system, cfg, _) in PAPER_SPECS.items()
             if cfg["kind"] != "waveform"]
    if not quick:
        cases.insert(2, ("subspectralnet_200", "SubSpectralNet", paper_spec("subspectralnet", n_mels=200)))
    return cases


def _fft_floor(x: np.ndarray, spec: FeatureSpec, repeat: int) -> tuple[float, float]:
    """(seconds of the float32 FFTs alone for x, fraction of frames our path redoes with a float64 FFT).

    librosa's time over the FFT time is the ceiling of our ratio: nothing else is left to speed up."""
    import torch

    from soundbench.features import logmel as lm

    c = lm.constants(spec)
    frames = (lm.frame_signal(torch.from_numpy(x), spec) * c.window32).flatten(0, 1)
    fft = report.best(report.timings(lambda: torch.fft.rfft(frames, dim=-1), repeat=repeat))
    s, norm, _ = lm.float32_bands(torch.from_numpy(x), spec)
    redo = lm._needs_float64(s, norm, spec, c) if spec.log != "none" else torch.zeros(1)
    return fft, float(redo.float().mean())


def spectrogram_rows(quick: bool) -> list[dict]:
    from soundbench.features.logmel import logmel

    repeat = 3 if quick else 15
    rows = []
    for name, system, spec in _cases(quick):
        seconds = min(spec.clip_seconds, 2.0) if quick else spec.clip_seconds
        x = test_audio(spec.n_channels, seconds, spec.sample_rate)
        if spec.peak_norm is not None:
            x = x * np.float32(spec.peak_norm / np.abs(x).max())
        ours = report.best(report.timings(lambda: logmel(x, spec), repeat=repeat))
        ref_s = report.best(report.timings(lambda: librosa_reference(x, spec), repeat=repeat))
        out = logmel(x, spec)
        fft, recomputed = _fft_floor(x, spec, repeat)
        audio_s = seconds * spec.n_channels  # channel-seconds: a stereo clip is twice the work of a mono one
        rows.append({"spec": name, "system": system, "shape": "x".join(map(str, out.shape)),
                     "ours_audio_s_per_s": audio_s / ours, "librosa_audio_s_per_s": audio_s / ref_s,
                     "ratio": ref_s / ours, "max_abs_diff": parity(out, librosa_reference(x, spec), spec),
                     "ours_ms": 1e3 * ours, "librosa_ms": 1e3 * ref_s, "fft_ms": 1e3 * fft,
                     "ratio_ceiling": ref_s / fft, "float64_frames": recomputed})
    return rows


def _write_test_files(directory: Path, seconds: float) -> dict[str, tuple[Path, str]]:
    """The formats the datasets ship: 48 kHz stereo 24-bit wav (TUT/TAU), 16 kHz mono mp3 (MagnaTagATune),
    16 kHz mono 16-bit wav (Speech Commands, DCASE 2017); -> {label: (path, spec used after decoding)}."""
    import soundfile as sf

    files = {}
    for label, sr, ch, fmt, sub, ext in (("wav 48k stereo 24-bit", 48000, 2, "WAV", "PCM_24", "wav"),
                                         ("wav 16k mono 16-bit", 16000, 1, "WAV", "PCM_16", "wav"),
                                         ("mp3 16k mono", 16000, 1, "MP3", "MPEG_LAYER_III", "mp3")):
        path = directory / f"{label.replace(' ', '_')}.{ext}"
        sf.write(path, 0.5 * test_audio(ch, seconds, sr).T, sr, format=fmt, subtype=sub)
        files[label] = path
    return files


def decode_rows(quick: bool) -> list[dict]:
    """Decoding per file format with each decoder, and soxr resampling to the systems' rates."""
    import shutil

    from soundbench import audio

    seconds, repeat = (5.0, 3) if quick else (30.0, 5)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = _write_test_files(Path(tmp), seconds)
        decoders = [("soundfile", audio.decode_soundfile)]
        if shutil.which("ffmpeg") and shutil.which("ffprobe"):
            decoders.append(("ffmpeg", audio._decode_ffmpeg))
        for label, path in files.items():
            for decoder, fn in decoders:
                t = report.best(report.timings(lambda: fn(str(path), 0.0, None), repeat=repeat))
                rows.append({"step": f"decode {label}", "with": decoder, "audio_s_per_s": seconds / t,
                             "ms_per_10s": 1e4 * t / seconds})
            x, sr = audio.decode_soundfile(str(path), 0.0, None)
            for target in sorted({22050, 48000} - {sr}):
                t = report.best(report.timings(lambda: audio.resample(x, sr, target), repeat=repeat))
                rows.append({"step": f"resample {label} -> {target}", "with": "soxr HQ",
                             "audio_s_per_s": seconds / t, "ms_per_10s": 1e4 * t / seconds})
    return rows


def run(quick: bool = False, out_dir=None) -> dict:
    with report.one_core():
        spectra = spectrogram_rows(quick)
        decoding = decode_rows(quick)
    print(report.table("Spectrograms, one core: ours vs librosa 0.11 on the same audio (audio-s per s = channel-"
                       "seconds of audio per second)", spectra,
                       [("spec", "spec"), ("system", "system"), ("shape", "output"), ("ours_ms", "ours ms"),
                        ("librosa_ms", "librosa ms"), ("ours_audio_s_per_s", "ours audio-s/s"),
                        ("librosa_audio_s_per_s", "librosa audio-s/s"), ("ratio", "ratio"),
                        ("max_abs_diff", "max |diff|"), ("float64_frames", "float64 frames"),
                        ("fft_ms", "FFT ms"), ("ratio_ceiling", "FFT-bound ratio")]))
    print("(float64 frames: share recomputed with a float64 FFT for parity in near-empty bands; FFT-bound "
          "ratio: librosa's time over our float32 FFTs alone)")
    print()
    print(report.table("Decoding and resampling, one core", decoding,
                       [("step", "step"), ("with", "with"), ("ms_per_10s", "ms per 10 s"),
                        ("audio_s_per_s", "audio-s/s")]))
    goals = [report.goal(f"{r['spec']}: ours / librosa", r["ratio"], RATIO_GOAL, unit="x") for r in spectra]
    goals.append(report.goal("max |diff| in the log domain, all specs", max(r["max_abs_diff"] for r in spectra),
                             PARITY_GOAL, higher_is_better=False))
    print(report.goals_text(goals))
    return {"quick": quick, "rows": spectra, "decoding": decoding, "goals": goals}
