"""`soundbench bench features`: our spectrograms against librosa on one core, and audio decoding apart.

For every spectral feature spec of the published systems, the same test audio goes through `logmel()` and
through librosa with the same parameters (window array, framing, mel filters, log). Reported: throughput of
each in audio-seconds per second (one core, one thread) and their ratio, and parity judged against librosa's
own precision: the reference is librosa on the float64 signal, and three errors are set against it: librosa
on the float32 signal (what a user who loads audio with librosa.load gets), ours (the spec's default
precision) and ours with float32 FFTs only; each everywhere and within 80 dB of each frame's peak band.
Parity (`parity_ratio` <= 1) holds when ours is no further than librosa-float32 (up to PARITY_SLACK), everywhere and
within 80 dB, and within PARITY_GOAL within 80 dB. Decoding (wav, mp3; soundfile vs ffmpeg) and resampling are
timed on their own, since on real data they can cost more than the features.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from soundbench.bench import report
from soundbench.features.paper_specs import PAPER_SPECS, paper_spec
from soundbench.features.spec import FeatureSpec

RATIO_GOAL = 3.0
PARITY_GOAL = 1e-3  # log units, within WITHIN_DB of each frame's peak
WITHIN_DB = 80.0
# float32 outputs of two correct computations differ by rounding: at |log value| ~ 30 (ln of 1e-13) one
# float32 step is 1.9e-6; "no further than librosa-float32" allows this much on top (relative to the peak for
# a spec without log)
PARITY_SLACK = {"log": 1e-4, "linear": 1e-6}


def test_audio(channels: int, seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """(C, N) float64 that exercises the hard cases of parity, not only loud noise: coloured noise under a
    slow envelope, tones, a stretch band-limited to a quarter of the rate (like upsampled audio) and one of
    digital silence. float64: the float32 copy is what librosa.load would give."""
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
    return x


def parity_signals(channels: int, seconds: float, sr: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The three hard cases of parity on their own, float64 (C, N): noise low-passed at a sixth of the rate
    with one stretch of digital silence, pure tones (deep sidelobes), a short burst in silence."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    noise = rng.standard_normal((channels, n))
    spectrum = np.fft.rfft(noise)
    spectrum[:, np.fft.rfftfreq(n, 1 / sr) > sr / 6] = 0
    band_limited = np.fft.irfft(spectrum, n)
    band_limited *= 0.3 / band_limited.std()
    band_limited[:, int(0.4 * n):int(0.5 * n)] = 0.0
    tonal = np.stack([0.5 * np.sin(2 * np.pi * (440 + 110 * c) * t) + 0.2 * np.sin(2 * np.pi * sr / 16 * t)
                      for c in range(channels)])
    burst = np.zeros((channels, n))
    burst[:, n // 3:n // 2] = 0.1 * rng.standard_normal((channels, n // 2 - n // 3))
    return {"band-limited": band_limited, "tonal": tonal, "silent": burst}


def spec_input(x: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """A test signal (C, N) shaped as the spec's channels want it (lrd: L, R, L-R) and peak-normalised."""
    if spec.channels == "lrd":
        x = np.stack([x[0], x[1], x[0] - x[1]])
    if spec.peak_norm is not None:
        x = x * (spec.peak_norm / np.abs(x).max())
    return x


def librosa_bands(x: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The spec's band values before the log, computed with librosa 0.11 channel by channel in x's precision
    (float64 in, float64 out; float32 in, librosa's float32 result): (C, N) -> (C, n_bins, T)."""
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
        out.append(s)
    return np.stack(out)


def librosa_log(s: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The spec's log of librosa band values, with librosa's functions, per channel."""
    import librosa

    if spec.log == "db":
        to_db = librosa.power_to_db if spec.power == 2.0 else librosa.amplitude_to_db
        return np.stack([to_db(c, ref=1.0, amin=spec.log_eps, top_db=spec.top_db) for c in s])
    if spec.log in ("ln", "log10"):
        return (np.log if spec.log == "ln" else np.log10)(s + spec.log_eps)
    return s


def librosa_reference(x: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The spec computed with librosa 0.11 in x's precision: (C, N) -> (C, n_bins, T)."""
    return librosa_log(librosa_bands(x, spec), spec)


def within_db(bands: np.ndarray, spec: FeatureSpec, db: float = WITHIN_DB) -> np.ndarray:
    """Mask of the band values (C, n_bins, T) within `db` of their frame's peak band (power or magnitude)."""
    level = (10.0 if spec.power == 2.0 else 20.0) * np.log10(np.maximum(bands, 1e-300))
    return level >= level.max(axis=-2, keepdims=True) - db


def errors(out: np.ndarray, reference: np.ndarray, mask: np.ndarray, spec: FeatureSpec) -> tuple[float, float]:
    """Largest |out - reference| (log units; relative to the reference's peak for a spec without log),
    everywhere and where mask holds."""
    diff = np.abs(out.astype(np.float64) - reference)
    if spec.log == "none":
        diff = diff / np.abs(reference).max()
    return float(diff.max()), float(diff[mask].max()) if mask.any() else 0.0


def parity_ratio(ours: tuple[float, float], librosa32: tuple[float, float], spec: FeatureSpec) -> float:
    """The parity rule on (everywhere, within 80 dB) errors against librosa-float64, as the largest ratio of
    an error of ours to what the rule allows: librosa-float32's (+ slack) both ways, PARITY_GOAL within 80 dB.
    Parity holds at <= 1."""
    slack = PARITY_SLACK["linear" if spec.log == "none" else "log"]
    ratios = [ours[0] / (librosa32[0] + slack), ours[1] / (librosa32[1] + slack)]
    if spec.log != "none":
        ratios.append(ours[1] / PARITY_GOAL)
    return max(ratios)


def parity_errors(x: np.ndarray, spec: FeatureSpec) -> dict[str, tuple[float, float]]:
    """{librosa-float32, ours, ours-float32}: (everywhere, within 80 dB) errors against librosa on the float64
    signal x (C, N) shaped for the spec."""
    from soundbench.features.logmel import logmel

    bands = librosa_bands(x, spec)
    reference, mask = librosa_log(bands, spec), within_db(bands, spec)
    x32 = x.astype(np.float32)
    float32_only = dataclasses.replace(spec, precision="float32")
    return {"librosa-float32": errors(librosa_reference(x32, spec), reference, mask, spec),
            "ours": errors(logmel(x32, spec), reference, mask, spec),
            "ours-float32": errors(logmel(x32, float32_only), reference, mask, spec)}


def _cases(quick: bool) -> list[tuple[str, str, FeatureSpec]]:
    """(name, system, spec) of every spectral spec of the published systems (+ SubSpectralNet's 200 mels)."""
    cases = [(name, system, paper_spec(name)) for name, (system, cfg, _) in PAPER_SPECS.items()
             if cfg["kind"] != "waveform"]
    if not quick:
        cases.insert(2, ("subspectralnet_200", "SubSpectralNet", paper_spec("subspectralnet", n_mels=200)))
    return cases


STAGES = (("frame", "framing"), ("fft32", "window+FFT32"), ("bands", "power+mel"), ("estimate", "estimate"),
          ("fft64", "window+FFT64"), ("redo", "redo gather+write"), ("log", "log"), ("other", "other"))


@contextlib.contextmanager
def _timed_stages(module, labels: dict):
    """Wrap module's functions {name: label or fn(args) -> label} to add their exclusive seconds (their own time,
    less that of wrapped functions they call) into the yielded dict, for the duration of the block."""
    totals: dict[str, float] = collections.defaultdict(float)
    inner: list[float] = []
    originals = {name: getattr(module, name) for name in labels}

    def wrap(name, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            inner.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                label = labels[name](args) if callable(labels[name]) else labels[name]
                totals[label] += elapsed - inner.pop()
                if inner:
                    inner[-1] += elapsed
        return timed

    for name, fn in originals.items():
        setattr(module, name, wrap(name, fn))
    try:
        yield totals
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def stage_profile(x: np.ndarray, spec: FeatureSpec, repeat: int) -> dict:
    """Milliseconds of each stage of our spectrogram of x (C, N) float32, taken inside real logmel() calls (its
    stage functions wrapped with timers, exclusive times, so the stages add up to the whole): framing, window +
    float32 FFT, power + mel (both passes), the float64 estimate, window + float64 FFT of the redone frames,
    gathering and writing back those frames, the log, other (glue, conversions); from the run of median total.
    Also the share of frames redone. The two FFT stages are the floor of our design."""
    import torch

    from soundbench.features import logmel as lm

    labels = {"frame_signal": "frame", "band_values": "bands", "needs_float64": "estimate",
              "redo_float64": "redo", "log_compress": "log", "logmel": "other", "spectrogram_torch": "other",
              "float32_bands": "other",
              "windowed_fft": lambda args: "fft64" if args[1].dtype == torch.float64 else "fft32"}
    runs = []
    for _ in range(repeat + 1):
        with _timed_stages(lm, labels) as totals:
            t0 = time.perf_counter()
            lm.logmel(x, spec)
            total = time.perf_counter() - t0
        runs.append((total, dict(totals)))
    total, totals = sorted(runs[1:], key=lambda r: r[0])[len(runs[1:]) // 2]
    out = {key: 1e3 * totals.get(key, 0.0) for key, _ in STAGES}
    out["other"] += 1e3 * (total - sum(totals.values()))  # the call itself, outside every wrapped function
    c = lm.constants(spec)
    s, norm2, _ = lm.float32_bands(torch.from_numpy(x), spec)
    out["redo_share"] = float(lm.needs_float64(s, norm2, spec, c).float().mean()) if lm.redoes_float64(spec) else 0.0
    return out


def spectrogram_rows(quick: bool) -> list[dict]:
    from soundbench.features.logmel import logmel

    repeat = 3 if quick else 21
    rows = []
    for name, system, spec in _cases(quick):
        seconds = min(spec.clip_seconds, 2.0) if quick else spec.clip_seconds
        x = spec_input(test_audio(2 if spec.channels == "lrd" else spec.n_channels, seconds, spec.sample_rate),
                       spec)
        x32 = x.astype(np.float32)
        float32_only = dataclasses.replace(spec, precision="float32")
        t = report.interleaved({"ours": lambda: logmel(x32, spec), "ours32": lambda: logmel(x32, float32_only),
                                "librosa": lambda: librosa_reference(x32, spec)}, repeat=repeat)
        ours, ours32, ref_s = t["ours"], t["ours32"], t["librosa"]
        stages = stage_profile(x32, spec, repeat)
        err = parity_errors(x, spec)
        audio_s = seconds * spec.n_channels  # channel-seconds: a stereo clip is twice the work of a mono one
        rows.append({"spec": name, "system": system, "shape": "x".join(map(str, spec.output_shape(x.shape[-1]))),
                     "ours_audio_s_per_s": audio_s / ours, "librosa_audio_s_per_s": audio_s / ref_s,
                     "ratio": ref_s / ours, "ours_ms": 1e3 * ours, "librosa_ms": 1e3 * ref_s,
                     "ratio_float32": ref_s / ours32, "ours_float32_ms": 1e3 * ours32,
                     **{f"{k}_ms": stages[k] for k, _ in STAGES}, "float64_frames": stages["redo_share"],
                     "stages_ms": sum(stages[k] for k, _ in STAGES),
                     "ratio_ceiling": 1e3 * ref_s / (stages["fft32"] + stages["fft64"]),
                     **{f"err_{k}": v[0] for k, v in err.items()},
                     **{f"err80_{k}": v[1] for k, v in err.items()},
                     "parity": parity_ratio(err["ours"], err["librosa-float32"], spec),
                     "parity_float32": parity_ratio(err["ours-float32"], err["librosa-float32"], spec)})
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
    print(report.table("Spectrograms, one core: ours vs librosa 0.11 on the same float32 audio (audio-s per s = "
                       "channel-seconds of audio per second)", spectra,
                       [("spec", "spec"), ("system", "system"), ("shape", "output"), ("ours_ms", "ours ms"),
                        ("librosa_ms", "librosa ms"), ("ours_audio_s_per_s", "ours audio-s/s"),
                        ("librosa_audio_s_per_s", "librosa audio-s/s"), ("ratio", "ratio"),
                        ("ratio_float32", "ratio f32-only"), ("float64_frames", "float64 frames"),
                        ("ratio_ceiling", "FFT-bound ratio")]))
    print("(ratio f32-only: with precision float32; float64 frames: share recomputed with a float64 FFT for "
          "parity in near-empty bands; FFT-bound ratio: librosa's time over our two FFT stages below, the "
          "ceiling of ours)")
    print()
    print(report.table("Where our time goes, ms (one core; timed inside logmel calls, the run of median total)",
                       spectra, [("spec", "spec")] + [(f"{k}_ms", h) for k, h in STAGES]
                       + [("stages_ms", "total")]))
    print("(window+FFT32: every frame windowed and transformed in float32, chunk by chunk; power+mel: squares, "
          "spectral norms, sqrt for magnitude specs, the banded mel products, for both passes; estimate: which "
          "frames need float64; window+FFT64: their float64 FFTs; redo gather+write: the rest of the redo)")
    print()
    print(report.table(f"Parity: largest error against librosa on the float64 signal (log units; relative to "
                       f"the peak for acivw), everywhere | within {WITHIN_DB:g} dB of each frame's peak",
                       spectra,
                       [("spec", "spec"), ("err_librosa-float32", "librosa-f32"), ("err_ours", "ours"),
                        ("err_ours-float32", "ours f32-only"), ("err80_librosa-float32", "librosa-f32 80dB"),
                        ("err80_ours", "ours 80dB"), ("err80_ours-float32", "ours f32-only 80dB"),
                        ("parity", "rule ratio"), ("parity_float32", "rule ratio f32-only")]))
    print("(rule ratio: the largest of our error over what parity allows: librosa-float32's error (+ "
          f"{PARITY_SLACK['log']:g} for float32 rounding) everywhere and within {WITHIN_DB:g} dB, and "
          f"{PARITY_GOAL:g} within {WITHIN_DB:g} dB; parity holds at <= 1. float64-where-needed is the default "
          "precision because float32-only does not hold it)")
    print()
    print(report.table("Decoding and resampling, one core", decoding,
                       [("step", "step"), ("with", "with"), ("ms_per_10s", "ms per 10 s"),
                        ("audio_s_per_s", "audio-s/s")]))
    goals = [report.goal(f"{r['spec']}: ours / librosa", r["ratio"], RATIO_GOAL, unit="x") for r in spectra]
    goals += [report.goal(f"{r['spec']}: parity rule ratio", r["parity"], 1.0, higher_is_better=False)
              for r in spectra]
    print(report.goals_text(goals))
    return {"quick": quick, "rows": spectra, "decoding": decoding, "goals": goals}
