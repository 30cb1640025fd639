"""Decoding, resampling, channel maps and length fitting (soundbench.audio)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from soundbench import audio
from soundbench.audio import DecodeError, decode, fit_length, resample, to_channels

SR = 16000


def _tone(seconds: float = 1.0, channels: int = 2, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = np.stack([0.5 * np.sin(2 * np.pi * (300 + 200 * c) * t) for c in range(channels)])
    return x.astype(np.float32)  # (C, N)


@pytest.mark.parametrize("ext,subtype,tol", [("wav", "PCM_16", 1e-4), ("flac", "PCM_16", 1e-4),
                                             ("ogg", "VORBIS", None), ("mp3", "MPEG_LAYER_III", None)])
def test_decode_formats(tmp_path, ext, subtype, tol):
    x = _tone(1.0, 2)
    path = tmp_path / f"a.{ext}"
    sf.write(path, x.T, SR, subtype=subtype)
    y, sr = decode(path)
    assert sr == SR and y.dtype == np.float32 and y.shape[0] == 2
    assert abs(y.shape[1] - SR) <= 1200  # lossy codecs may add/trim a frame of priming samples
    if tol is not None:
        assert y.shape == x.shape and np.abs(y - x).max() < tol


def test_decode_start_duration(tmp_path):
    x = _tone(2.0, 1)
    sf.write(tmp_path / "a.wav", x.T, SR, subtype="FLOAT")
    y, _ = decode(tmp_path / "a.wav", start=0.5, duration=0.25)
    np.testing.assert_array_equal(y, x[:, 8000:12000])
    y, _ = decode(tmp_path / "a.wav", start=float("nan"), duration=float("nan"))  # manifest NaNs
    assert y.shape == x.shape


def test_decode_error_names_file_and_reasons(tmp_path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF not really audio" * 10)
    with pytest.raises(DecodeError) as err:
        decode(bad)
    msg = str(err.value)
    assert str(bad) in msg and "soundfile:" in msg and "ffmpeg:" in msg


@pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                    reason="ffmpeg binary not installed")
def test_ffmpeg_fallback_matches_soundfile(tmp_path):
    x = _tone(1.0, 2)
    sf.write(tmp_path / "a.wav", x.T, SR, subtype="FLOAT")
    y, sr = audio._decode_ffmpeg(str(tmp_path / "a.wav"), 0.25, 0.5)
    assert sr == SR and y.shape == (2, 8000)
    np.testing.assert_allclose(y, x[:, 4000:12000], atol=1e-6)


def test_resample_shape_and_tone():
    x = _tone(1.0, 2)
    y = resample(x, SR, 22050)
    assert y.shape == (2, 22050) and y.dtype == np.float32
    assert resample(x, SR, SR) is x
    # the 300 Hz tone stays a 300 Hz tone
    spec = np.abs(np.fft.rfft(y[0]))
    assert abs(np.argmax(spec) * 22050 / y.shape[1] - 300) < 2


def test_channel_modes():
    x = np.array([[1.0, 2.0], [0.5, -1.0]], dtype=np.float32)
    np.testing.assert_allclose(to_channels(x, "mono"), [[0.75, 0.5]])
    np.testing.assert_allclose(to_channels(x, "left"), [[1.0, 2.0]])
    np.testing.assert_allclose(to_channels(x, "right"), [[0.5, -1.0]])
    np.testing.assert_allclose(to_channels(x, "lrd"), [[1.0, 2.0], [0.5, -1.0], [0.5, 3.0]])
    mono = x[:1]
    np.testing.assert_allclose(to_channels(mono, "stereo"), [[1.0, 2.0], [1.0, 2.0]])
    np.testing.assert_allclose(to_channels(mono, "lrd")[2], [0.0, 0.0])
    with pytest.raises(ValueError):
        to_channels(x, "surround")


def test_fit_length_pad_modes():
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    # sample-and-hold with the original's k = n // N + 1 (3 here, where ceil(4 / 2) would give [1, 1, 2, 2])
    np.testing.assert_array_equal(fit_length(x, 4, "repeat"), [[1, 1, 1, 2]])
    np.testing.assert_array_equal(fit_length(x, 4, "loop"), [[1, 2, 1, 2]])
    np.testing.assert_array_equal(fit_length(x, 4, "zero"), [[1, 2, 0, 0]])
    np.testing.assert_array_equal(fit_length(np.array([[1.0, 2.0, 3.0]]), 5, "repeat"), [[1, 1, 2, 2, 3]])
    # a 9.5-s clip stretched to 10 s: k = 2, the first 10 s of every sample held twice
    short = np.arange(95.0)[None]
    np.testing.assert_array_equal(fit_length(short, 100, "repeat"), np.repeat(short, 2, axis=-1)[:, :100])
    np.testing.assert_array_equal(fit_length(np.arange(6.0)[None], 4, "repeat"), [[0, 1, 2, 3]])  # crop
    assert fit_length(np.zeros((2, 0), np.float32), 3, "loop").shape == (2, 3)


@pytest.mark.shared
def test_real_mtt_mp3(shared_data):
    y, sr = decode(shared_data / "mtt_meta/audio/e/joram-moments_of_clarity-08-solipsism-59-88.mp3")
    assert sr == 16000 and y.shape[0] == 1
    assert 29.0 < y.shape[1] / sr < 29.3
    assert np.abs(y).max() > 0.01


@pytest.mark.shared
def test_real_tau_wav(shared_data):
    path = (shared_data / "soundata_clips/tau2019uas/TAU-urban-acoustic-scenes-2019-development/audio/"
            "airport-barcelona-0-0-a.wav")
    y, sr = decode(path)
    info = sf.info(path)
    assert sr == 48000 and y.shape == (2, info.frames)
    assert to_channels(y, "lrd").shape == (3, info.frames)
