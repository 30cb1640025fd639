"""Spectral features in torch (a framed real FFT + a mel matrix product) with librosa parity.

`logmel(x, spec)` computes kind "logmel" (mel bands) and kind "stft" (linear bins) for any batch of
signals (..., N); the mel filterbank is built in float64 like `librosa.filters.mel` and applied in float32,
block by block over the bins each block of filters touches. Stages (each its own function, so that
`soundbench bench features` can time them apart): frame_signal -> windowed_fft -> band_values (the float32
pass, chunk by chunk) -> needs_float64 -> redo_float64 -> log_compress.
Parity with librosa.feature.melspectrogram + power_to_db / np.log is checked in tests/test_logmel.py.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch

from soundbench.features.spec import FeatureSpec

# Slaney's Auditory Toolbox mel scale: linear below 1 kHz, logarithmic above (librosa htk=False)
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0

# The FFT runs in float32: ~1.8x as fast as float64 (MKL, one core, 128 frames of 2,048: 220 vs 400 us).
# Its error per bin is up to ~1 eps32 x the frame's spectral norm (measured on noise, tones, impulses), which
# matters only in bands far below the frame's peak (a pure tone's sidelobes, the empty band above an upsampled
# clip's old Nyquist). Frames whose estimated log-domain error (needs_float64, calibrated against float64 with
# FFT_ERROR) exceeds LOG_ERROR_BOUND are recomputed with a float64 FFT, like librosa's.
FFT_ERROR = 0.5 * float(np.finfo(np.float32).eps)
LOG_ERROR_BOUND = 2e-4
# frames per FFT call (128 of 2,048 points: 1 MiB, what a core's L2 holds). Fixed, not sized in bytes: MKL's
# product of a mel block sums in an order that depends on the number of rows, so chunking decides the last bit
# of the features (and, through training, the demo's numbers)
CHUNK_FRAMES = 128
MEL_GROUP = 16  # mel filters per block of the banded filterbank product (4 or 8: slower, more and smaller calls)


def hz_to_mel(f: np.ndarray, htk: bool = False) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    mel = f / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log_part, mel)


def mel_to_hz(m: np.ndarray, htk: bool = False) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f = m * _F_SP
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log_part, f)


def mel_filterbank(sr: float, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                   htk: bool = False, norm: str | None = "slaney") -> np.ndarray:
    """Triangular mel filters, float64 array (n_mels, n_fft // 2 + 1); equals librosa.filters.mel.

    norm "slaney" scales each triangle to unit area (2 / bandwidth in Hz); None (or "none") leaves peaks at 1.
    """
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    # n_mels + 2 edge frequencies evenly spaced on the mel scale; filter i spans edges i .. i + 2
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    widths = np.diff(edges)
    offsets = edges[:, None] - fft_freqs[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    elif norm not in (None, "none"):
        raise ValueError(f"unsupported mel norm {norm!r} (slaney or none)")
    return weights


def window(spec: FeatureSpec) -> np.ndarray:
    """The analysis window placed in an n_fft frame, float64 (n_fft,). See spec.py for the window names."""
    spec = spec.resolved()
    kind = {"hann": ("hann", False), "hamming": ("hamming", True), "hamming_asym": ("hamming", False)}
    name, sym = kind[spec.window]
    import scipy.signal  # here, not at the top: scipy.signal costs a features job ~0.9 s of start-up

    w = scipy.signal.get_window(name, spec.win_length, fftbins=not sym)
    pad = spec.n_fft - spec.win_length
    left = pad // 2 if spec.win_align == "center" else 0  # "center": like librosa's pad_center / torch.stft
    return np.pad(w, (left, pad - left))


class _Constants(NamedTuple):
    window32: torch.Tensor  # (n_fft,)
    window64: torch.Tensor  # for the frames redone with a float64 FFT
    bands: list | None  # [(first filter, end filter, first bin, end bin, weights (bins, filters) float32)]
    mass: torch.Tensor  # (n_bins,) sum of each filter's weights (1 per bin for kind stft), for the error bound
    peak: torch.Tensor  # (n_bins,) largest weight of each filter (1 for kind stft)


@lru_cache(maxsize=32)
def constants(spec: FeatureSpec) -> _Constants:
    spec = spec.resolved()
    win = window(spec)
    w32, w64 = torch.from_numpy(win.astype(np.float32)), torch.from_numpy(win)
    if spec.kind != "logmel":
        ones = torch.ones(spec.n_fft // 2 + 1)
        return _Constants(w32, w64, None, ones, ones)
    fb = mel_filterbank(spec.sample_rate, spec.n_fft, spec.n_mels, spec.fmin, spec.fmax,
                        htk=spec.mel_scale == "htk", norm=spec.mel_norm).astype(np.float32)
    # each filter spans few FFT bins: a product per block of filters over the bins it touches does ~1/8 of
    # the dense (n_mels x bins) work for 128 mels of a 2,048-point FFT. (A sparse CSR product over frames as
    # columns is 4-7 % faster overall but sums in another order: features change by ~1e-6, and the demo's
    # trained models with them, by up to 0.09 accuracy; see README "Performance".)
    bands = []
    for first in range(0, fb.shape[0], MEL_GROUP):
        block = fb[first:first + MEL_GROUP]
        used = np.flatnonzero(block.any(axis=0))
        lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)
        bands.append((first, first + len(block), lo, hi, torch.from_numpy(np.ascontiguousarray(block[:, lo:hi].T))))
    return _Constants(w32, w64, bands, torch.from_numpy(fb.sum(axis=1)), torch.from_numpy(fb.max(axis=1)))


def frame_signal(x: torch.Tensor, spec: FeatureSpec) -> torch.Tensor:
    """(B, N) -> (B, T, n_fft) view of the analysis frames (before the window), librosa / torch.stft framing."""
    if spec.center:
        half = spec.n_fft // 2
        if spec.pad_mode == "reflect":
            x = torch.nn.functional.pad(x[:, None], (half, half), mode="reflect")[:, 0]
        else:
            x = torch.nn.functional.pad(x, (half, half))
    elif spec.win_align == "left" and spec.win_length < spec.n_fft:
        # tf.signal.stft frames hold win_length samples; the zero tail of the window reaches past the signal
        x = torch.nn.functional.pad(x, (0, spec.n_fft - spec.win_length))
    return x.unfold(-1, spec.n_fft, spec.hop_length)


def windowed_fft(frames: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """complex64 spectra (R, n_fft // 2 + 1) of frames (R, n_fft) under the window, in the window's precision."""
    windowed = frames * window if frames.dtype == window.dtype else frames.to(window.dtype).mul_(window)
    spectra = torch.fft.rfft(windowed, dim=-1)
    return spectra if spectra.dtype == torch.complex64 else spectra.to(torch.complex64)


def band_values(spectra: torch.Tensor, spec: FeatureSpec, c: _Constants, out: torch.Tensor) -> torch.Tensor:
    """Band values of complex64 spectra (R, n_fft // 2 + 1) into out (R, n_bins); returns each frame's squared
    spectral norm (R,). Overwrites spectra (squared in place: one allocation fewer)."""
    parts = torch.view_as_real(spectra).square_()
    power = torch.add(parts[..., 0], parts[..., 1], out=out if c.bands is None else None)
    norm2 = power.sum(-1)
    if spec.power == 1.0:
        power.sqrt_()
    for first, end, lo, hi, weights in c.bands or ():
        torch.mm(power[:, lo:hi], weights, out=out[:, first:end])
    return norm2


def redoes_float64(spec: FeatureSpec) -> bool:
    """Whether the spec recomputes frames with float64 FFTs where needed (a log, and that precision)."""
    return spec.log != "none" and spec.precision == "float64-where-needed"


def needs_float64(s: torch.Tensor, norm2: torch.Tensor, spec: FeatureSpec, c: _Constants) -> torch.Tensor:
    """Frames (R,) of band values s (R, n_bins) whose log a float32 FFT could move by > LOG_ERROR_BOUND.

    Each bin is off by up to d = FFT_ERROR x the frame's spectral norm, in directions that do not line up across
    bins: a band with weights w (largest w_max, sum m) is then off by about e = d·sqrt(w_max·m) (magnitude) or
    2·d·sqrt(w_max·S) + d²·m (power), and its log by about e / (S + log_eps) (ln; x 10/ln10/power for dB).
    (The worst case, all errors aligned, is sqrt(m / w_max) times that: it would send nearly every frame of a
    quiet recording to float64; tests/test_logmel.py checks the estimate against float64 on tones, silence
    and band-limited audio.)
    """
    d = (FFT_ERROR * norm2.sqrt())[:, None]
    if spec.power == 1.0:
        err = d * torch.sqrt(c.peak * c.mass)
    else:
        err = torch.addcmul(d * d * c.mass, d, torch.sqrt(s * c.peak), value=2.0)
    scale = {"db": 10.0 / spec.power / math.log(10.0), "log10": 1.0 / math.log(10.0)}.get(spec.log, 1.0)
    # log-domain error e·scale / (S + log_eps) > bound, without a division (dB: S below log_eps is clamped)
    return (err * scale > LOG_ERROR_BOUND * (s + spec.log_eps)).any(-1)


def float32_bands(x: torch.Tensor, spec: FeatureSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(band values (B·T, n_bins), squared spectral norms (B·T,), frames (B, T, n_fft) view) of (B, N) float32
    signals, from float32 FFTs only; a resolved spec."""
    c = constants(spec)
    frames = frame_signal(x.to(torch.float32), spec)
    batch, steps, _ = frames.shape
    s = torch.empty(batch * steps, spec.n_bins)
    norm2 = torch.empty(batch * steps)
    # a chunk at a time, so that frames and spectra stay in a core's L2 cache (~1.5x faster than whole clips)
    for b in range(batch):
        for t in range(0, steps, CHUNK_FRAMES):
            rows = slice(b * steps + t, b * steps + min(t + CHUNK_FRAMES, steps))
            norm2[rows] = band_values(windowed_fft(frames[b, t:t + CHUNK_FRAMES], c.window32), spec, c, s[rows])
    return s, norm2, frames


def redo_float64(s: torch.Tensor, frames: torch.Tensor, rows: torch.Tensor, spec: FeatureSpec) -> None:
    """Recompute rows (indices into B·T) of the band values s (B·T, n_bins) with float64 FFTs of their frames."""
    c = constants(spec)
    steps = frames.shape[1]
    for r in range(0, len(rows), CHUNK_FRAMES):
        part = rows[r:r + CHUNK_FRAMES]
        precise = torch.empty(len(part), spec.n_bins)
        band_values(windowed_fft(frames[part // steps, part % steps], c.window64), spec, c, precise)
        s[part] = precise


def spectrogram_torch(x: torch.Tensor, spec: FeatureSpec) -> torch.Tensor:
    """(B, N) float32 -> (B, n_bins, T) float32 (log-)mel or linear spectrogram as the spec says."""
    spec = spec.resolved()
    s, norm2, frames = float32_bands(x, spec)
    batch, steps, _ = frames.shape
    if redoes_float64(spec):
        redo_float64(s, frames, torch.nonzero(needs_float64(s, norm2, spec, constants(spec)))[:, 0], spec)
    s = s.view(batch, steps, -1).transpose(-1, -2)
    if spec.n_frames is not None:
        # cut (SubSpectralNet: 501 -> 500) or pad with silence before the log, so padding reads as log(eps)
        t = s.shape[-1]
        s = s[..., : spec.n_frames] if t >= spec.n_frames else torch.nn.functional.pad(s, (0, spec.n_frames - t))
    return log_compress(s.contiguous(), spec)


def log_compress(s: torch.Tensor, spec: FeatureSpec) -> torch.Tensor:
    """The spec's log of band values (..., n_bins, T); per channel top_db."""
    if spec.log == "none":
        return s
    if spec.log == "db":
        out = (20.0 / spec.power) * torch.log10(torch.clamp(s, min=spec.log_eps))
        if spec.top_db is not None:  # per channel, like power_to_db on that channel alone
            peak = out.amax(dim=(-2, -1), keepdim=True)
            out = torch.maximum(out, peak - spec.top_db)
        return out
    return torch.log(s + spec.log_eps) if spec.log == "ln" else torch.log10(s + spec.log_eps)


def logmel(x: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Spectral feature of every signal in x: (..., N) -> (..., n_bins, T) float32.

    Typically x is one clip (C, N) -> (C, n_mels, T); a batch of clips (B, C, N) is computed in one call.
    Kind "logmel" gives mel bands, kind "stft" linear bins (n_fft // 2 + 1).
    """
    if not spec.is_spectral:
        raise ValueError(f"feature spec {spec.name!r} has kind {spec.kind!r}, not a spectral kind")
    x = np.asarray(x, dtype=np.float32)
    lead, n = x.shape[:-1], x.shape[-1]
    with torch.no_grad():
        out = spectrogram_torch(torch.from_numpy(np.ascontiguousarray(x.reshape(-1, n))), spec)
    return out.reshape(*lead, *out.shape[-2:]).numpy()


spectrogram = logmel  # the same function under a kind-neutral name (kind "stft")
