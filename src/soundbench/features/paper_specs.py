"""The feature specs of the published systems, as config mappings (facts: ../shared/reference/seed-specs.md).

Used by the parity tests and `soundbench bench features`; experiment files spell the same keys in YAML.
"""
from __future__ import annotations

import numpy as np

from soundbench.features.spec import FeatureSpec

# name -> (system, config mapping, clip seconds)
PAPER_SPECS = {
    # SeNoT-Net: L, R, L-R; librosa power mel, HTK scale, no filter norm; ln(S + 1e-8); 469 frames per 10 s
    "senot": ("SeNoT-Net", dict(kind="logmel", sample_rate=48000, channels="lrd", n_fft=2048, hop_length=1024,
                                n_mels=128, mel_scale="htk", mel_norm="none", log="ln", log_eps=1e-8), 10.0),
    # SubSpectralNet (dcase_util MelExtractor): 40 ms periodic Hamming, 20 ms hop, magnitude, ln(S + eps)
    "subspectralnet": ("SubSpectralNet", dict(kind="logmel", sample_rate=48000, channels="stereo", n_fft=2048,
                                              win_length=1920, hop_length=960, window="hamming_asym", power=1.0,
                                              n_mels=40, mel_scale="slaney", mel_norm="slaney", log="ln",
                                              log_eps=float(np.spacing(1)), n_frames=500), 10.0),
    # the weakly-supervised SED CRNN: 64 log-mel bands x 431 frames per 10 s at 22,050 Hz
    "sed_crnn": ("SED CRNN", dict(kind="logmel", sample_rate=22050, n_fft=2048, hop_length=512, n_mels=64,
                                  log="db"), 10.0),
    # ACIVW's HearNet: tf.signal.stft framing (440 / 219 / 512), magnitude, no log, 200 frames per 2 s
    "acivw": ("ACIVW", dict(kind="stft", sample_rate=22050, n_fft=512, win_length=440, hop_length=219,
                            center=False, power=1.0, win_align="left", peak_norm=256.0), 2.0),
    # SampleCNN: raw waveform at 22,050 Hz, short clips stretched by the original's sample repetition
    "samplecnn": ("SampleCNN", dict(kind="waveform", sample_rate=22050, pad="repeat"), 29.0),
}


def paper_spec(name: str, **changes) -> FeatureSpec:
    """The resolved FeatureSpec of a published system (changes: keys to override, e.g. n_mels=200)."""
    _, cfg, seconds = PAPER_SPECS[name]
    return FeatureSpec.from_config(name, {**cfg, **changes}).resolved(seconds)
