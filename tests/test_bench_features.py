"""`soundbench bench features`: runs, records, and its parity column is real (no timed assertions)."""
from __future__ import annotations

import json

import numpy as np

from soundbench.bench import features, report
from soundbench.cli import main
from soundbench.features.paper_specs import paper_spec


def test_bench_features_quick_writes_its_record(tmp_path, capsys):
    assert main(["bench", "features", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ours / librosa" in out and "decode mp3 16k mono" in out
    record = json.loads((tmp_path / "features.json").read_text())
    assert record["bench"] == "features" and record["machine"]["cores"] >= 1
    specs = {r["spec"] for r in record["rows"]}
    assert specs == {"senot", "subspectralnet", "sed_crnn", "acivw"}
    for row in record["rows"]:
        assert row["ours_ms"] > 0 and row["librosa_ms"] > 0
        assert np.isclose(row["ratio"], row["librosa_ms"] / row["ours_ms"])
        assert row["err80_ours"] < features.PARITY_GOAL and row["parity"] <= 1.0
        assert row["err_librosa-float32"] > 0  # the reference is float64: librosa on float32 audio is not it
    assert any(r["float64_frames"] > 0 for r in record["rows"])  # the test audio has near-empty bands
    assert any(r["parity_float32"] > 1.0 for r in record["rows"])  # and float32 FFTs alone fail there
    parity = [g for g in record["goals"] if "parity" in g["goal"]]
    assert len(parity) == 4 and all(g["met"] for g in parity)
    assert {r["with"] for r in record["decoding"]} >= {"soundfile", "soxr HQ"}


def test_librosa_reference_is_independent_of_our_code_path():
    """The reference frames a left-aligned short window like tf.signal.stft, as our STFT does."""
    spec = paper_spec("acivw")
    x = features.test_audio(1, 2.0, spec.sample_rate)
    ref = features.librosa_reference(x, spec)[0]
    assert ref.dtype == np.float64
    frames = np.stack([x[0, i * 219: i * 219 + 440] for i in range(200)]) * np.hanning(441)[:-1]
    direct = np.abs(np.fft.rfft(frames, n=512)).T
    assert ref.shape == direct.shape == (257, 200)
    assert np.abs(ref - direct).max() / np.abs(direct).max() < 1e-6


def test_one_core_restores_affinity_and_threads():
    import os

    import torch

    cpus, threads = os.sched_getaffinity(0), torch.get_num_threads()
    with report.one_core():
        assert len(os.sched_getaffinity(0)) == 1 and torch.get_num_threads() == 1
    assert os.sched_getaffinity(0) == cpus and torch.get_num_threads() == threads
