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
    for row in record["rows"]:  # the stage profile: every stage present, non-negative, FFTs where they belong
        stages = [row[f"{key}_ms"] for key, _ in features.STAGES]
        assert min(stages) >= 0 and np.isclose(sum(stages), row["stages_ms"]) and row["fft32_ms"] > 0
        assert (row["fft64_ms"] > 0) == (row["float64_frames"] > 0)
    acivw = next(r for r in record["rows"] if r["spec"] == "acivw")
    assert acivw["estimate_ms"] == acivw["fft64_ms"] == 0  # no log: nothing to redo
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


def test_timed_stages_count_exclusive_time_and_restore_the_module():
    """A wrapped function's time excludes the wrapped functions it calls, so the stages add up to the whole."""
    import time
    import types

    mod = types.SimpleNamespace()
    mod.inner = lambda: time.sleep(0.02)
    mod.outer = lambda: (time.sleep(0.01), mod.inner())
    originals = (mod.inner, mod.outer)
    with features._timed_stages(mod, {"inner": "a", "outer": lambda args: "b"}) as totals:
        mod.outer()
    assert (mod.inner, mod.outer) == originals
    assert totals["a"] >= 0.02 and 0.01 <= totals["b"] < 0.03  # b without a (inclusive would be >= 0.03)


def test_interleaved_calls_each_function_every_round():
    calls = []
    t = report.interleaved({"x": lambda: calls.append("x"), "y": lambda: calls.append("y")}, repeat=3)
    assert calls == ["x", "y"] * 4 and set(t) == {"x", "y"} and all(v >= 0 for v in t.values())
