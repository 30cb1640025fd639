"""`soundbench predict`: a trained run applied to files gives, for a test clip, exactly the scores that its
evaluation gave; any format and sample rate the decoders read; tags at the run's thresholds."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

# tests/ is on sys.path (pytest's default import mode); the sed demo and the toy registry are test_seams' fixtures
from test_seams import MEL, WAVE, FrameToy, _dataset, _features, frame_bce, register, sed_demo  # noqa: F401

from soundbench import manifest as mf
from soundbench import runner
from soundbench.predict import predict


def _train_and_evaluate(tmp, m, inputs, system, task, params, train, threshold=None, name=None):
    run = tmp / f"run-{name or system}-{task}".replace(" ", "_")
    runner.train("speech_commands", tmp / "manifest.csv", inputs, system, task, params, train, 0, run,
                 run / "ckpt.pt", "cpu", progress=False)
    runner.evaluate(tmp / "manifest.csv", inputs, run / "model.pt", run, threshold, "cpu", "test")
    return run


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    m = _dataset(tmp, "speech_commands", words=("yes", "no", "up"), per_word=20, speakers=10, short_fraction=0.3)
    mf.write(m, tmp / "manifest.csv")
    return tmp, m, {"x": _features(tmp, m, "mel", MEL, 1.0)}


@pytest.fixture(scope="module")
def cnn_run(demo):
    tmp, m, inputs = demo
    return _train_and_evaluate(tmp, m, inputs, "smallcnn", "multiclass", {"widths": [4, 8, 8]},
                               {"stages": [{"epochs": 2}], "normalize": "global", "batch_size": 8})


def _scores(lines: list[str]) -> dict[str, dict[str, float]]:
    """{file: {class: score}} of predict's multiclass lines."""
    out: dict[str, dict[str, float]] = {}
    for line in lines[1:]:
        f, _, c, s = line.split("\t")
        out.setdefault(f, {})[c] = float(s)
    return out


@pytest.mark.parametrize("system", ["smallcnn", "baseline", "baseline on waveforms"])
def test_predict_gives_the_evaluation_scores_of_test_clips(demo, cnn_run, system):
    tmp, m, inputs = demo
    if system == "smallcnn":
        run = cnn_run
    else:  # the sklearn path; a waveform spec (its stored fields hold keys only spectral kinds accept)
        if "waveforms" in system:
            inputs = {"x": _features(tmp, m, "wave", WAVE, 1.0)}
        run = _train_and_evaluate(tmp, m, inputs, "baseline", "multiclass", {}, {}, name=system)
    evaluated = pd.read_csv(run / "predictions.csv").set_index("clip_id")
    test = m.split("test").head(6)
    paths = test["path"].tolist()
    lines = predict(run, paths, top_k=len(m.classes), device="cpu")
    assert lines[0] == "file\trank\tclass\tscore" and len(lines) == 1 + len(paths) * len(m.classes)
    got = _scores(lines)
    for clip_id, path in zip(test["clip_id"], paths):
        for c in m.classes:  # predictions.csv keeps 6 significant digits
            assert got[path][c] == pytest.approx(evaluated.loc[clip_id, c], rel=1e-4, abs=1e-6)
    ranks = [line.split("\t")[1] for line in lines[1:1 + len(m.classes)]]
    assert ranks == [str(k + 1) for k in range(len(m.classes))]


@pytest.mark.slow
def test_predict_reads_flac_and_mp3_at_other_rates(demo, cnn_run, tmp_path):
    import soxr

    tmp, m, _ = demo
    clip = m.split("test").iloc[0]
    x, sr = sf.read(clip["path"], dtype="float32")
    assert sr == 16000
    files = {"wav": clip["path"]}
    files["flac"] = str(tmp_path / "clip22k.flac")
    sf.write(files["flac"], soxr.resample(x, sr, 22050), 22050)
    stereo = np.stack([x, x], axis=1)
    try:
        files["mp3"] = str(tmp_path / "clip44k.mp3")
        sf.write(files["mp3"], soxr.resample(stereo, sr, 44100), 44100, format="MP3")
    except (sf.LibsndfileError, TypeError, ValueError):
        files.pop("mp3")  # this libsndfile has no mp3 encoder: the other formats still run
    out = tmp_path / "out" / "predictions.tsv"
    r = subprocess.run([sys.executable, "-m", "soundbench", "predict", str(cnn_run), *files.values(), "--out",
                        str(out), "--top-k", "2", "--device", "cpu"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = _scores(out.read_text().splitlines())
    assert set(got) == set(files.values()) and all(len(v) == 2 for v in got.values())
    ref = got[files["wav"]]
    for kind, f in files.items():  # resampled there and back (lossy for mp3): the same ranking, close scores
        assert list(got[f]) == list(ref), kind
        assert max(abs(got[f][c] - ref[c]) for c in ref) < 0.05, (kind, got[f], ref)
    if "mp3" not in files:
        pytest.skip("no mp3 encoder in this libsndfile: wav and flac checked")


def test_predict_tags_above_the_runs_thresholds(demo):
    """A multilabel run: every class at or above its (tuned) threshold, highest first."""
    tmp, m, inputs = demo
    run = _train_and_evaluate(tmp, m, inputs, "smallcnn", "multilabel", {"widths": [4, 8, 8]},
                              {"stages": [{"epochs": 2}], "batch_size": 8}, threshold={"method": "max_f1"})
    from soundbench.evaluation import predictions as pred_io

    preds, attrs = pred_io.read(run / "predictions.h5")
    thresholds = np.asarray(attrs["thresholds"])
    test = preds["test"]
    paths = m.table.set_index("clip_id").loc[test.clip_ids[:8], "path"].tolist()
    lines = predict(run, paths, device="cpu")
    assert lines[0] == "file\tclass\tscore"
    rows = [line.split("\t") for line in lines[1:]]
    for clip, path, scores in zip(test.clip_ids[:8], paths, test.scores[:8]):
        want = [m.classes[k] for k in np.argsort(-scores, kind="stable") if scores[k] >= thresholds[k]]
        assert [c for f, c, _ in rows if f == path] == want, clip


def test_predict_errors_name_the_file(cnn_run, tmp_path):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"not audio at all" * 10)
    with pytest.raises(Exception, match="noise.wav"):
        predict(cnn_run, [str(bad)], device="cpu")
    with pytest.raises(FileNotFoundError, match="nope.wav: no such audio file"):
        predict(cnn_run, [str(tmp_path / "nope.wav")], device="cpu")
    with pytest.raises(FileNotFoundError, match="model.pt is missing: RUN_DIR must be a run directory after"):
        predict(tmp_path, [str(bad)], device="cpu")
    (tmp_path / "model.pt").write_bytes((cnn_run / "model.pt").read_bytes())
    with pytest.raises(FileNotFoundError, match="predictions.h5 is missing: .* after `evaluate`"):
        predict(tmp_path, [str(bad)], device="cpu")


def test_predict_gives_the_events_of_the_evaluation(sed_demo, register, tmp_path):  # noqa: F811 (fixtures)
    """A sed run (a toy frame model): predict's events of test clips are the lines of evaluate's events.tsv."""
    from soundbench import systems

    tmp, m, inputs = sed_demo
    register(systems.System("frame_toy_predict", "frame toy", "torch",
                            lambda n, task, shapes, **p: FrameToy(n, shapes["x"][1]), loss=frame_bce,
                            train={"optimizer": "adam", "lr": 3e-3, "batch_size": 8, "stages": [{"epochs": 15}],
                                   "select_on": "last", "normalize": "per_band"}))
    run = tmp_path / "run"
    runner.train("dcase2018_task4", tmp / "manifest.csv", inputs, "frame_toy_predict", "sed", {}, {}, 0, run,
                 tmp_path / "ck.pt", "cpu", progress=False)
    runner.evaluate(tmp / "manifest.csv", inputs, run / "model.pt", run, None, "cpu", "test")
    evaluated = (run / "events.tsv").read_text().splitlines()
    names = sorted({line.split("\t")[0] for line in evaluated[1:]})[:4]
    assert names, "the toy detected no event at all: nothing to compare"
    paths = [p for p in m.split("test")["path"] if p.rsplit("/", 1)[-1] in names]
    lines = predict(run, paths, device="cpu")
    assert lines[0] == evaluated[0] == "filename\tonset\toffset\tevent_label"
    assert sorted(lines[1:]) == sorted(line for line in evaluated[1:] if line.split("\t")[0] in names)
