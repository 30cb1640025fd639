"""The IJCNN 2019 weakly-supervised SED system: parameter counts, the Keras GRU, the MIL loss and the cosine penalty
(against scikit-learn), the original post-processing and decoding, the frame duration, the DCASE events file read
by sed_eval, the original's duplicated split, the 1-best rows and the figures, and pass 1 -> pass 2 end to end."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from sklearn.metrics.pairwise import cosine_similarity
from workflow_runs import ROOT, arg, planned

from soundbench import configuration, describe, runner, sed_postprocess, systems, tasks
from soundbench import manifest as mf
from soundbench.datasets import get as get_dataset
from soundbench.datasets import make_demo
from soundbench.features.extract import extract_shard
from soundbench.features.spec import FeatureSpec
from soundbench.fetch.extract import extract
from soundbench.models.sed_crnn import TABLE_I, KerasBiGRU, cosine_penalty, hard_sigmoid, mil_loss, table_i_paper
from soundbench.reporting import sed_figures

SED_SPEC = {"kind": "logmel", "sample_rate": 22050, "n_fft": 2048, "hop_length": 512, "n_mels": 64, "log": "db"}


# ------------------------------------------------------------------------------------------ models

@pytest.mark.parametrize("sets, expected", [
    ({"glu": True}, 207_818),  # the notebook's model.summary(): 208,586 parameters, 207,818 trainable
    ({"glu": True, "gru": "torch"}, 208_202),  # torch.nn.GRU: a second bias vector per gate, 2 x 3 x 64 more
    ({"glu": False}, 133_322),
])
def test_crnn_trainable_parameters(sets, expected):
    d = describe.describe("sed_crnn", sets)
    assert d["n_params"] == expected and d["outputs"] == {"logits": [431, 10]}
    assert d["input_shapes"]["x"] == [1, 64, 431]
    assert ("384 more" in d["note"]) == (sets.get("gru") == "torch")
    system = systems.get("sed_crnn")
    model = system.build(10, tasks.get("sed"), {"x": (1, 64, 431)}, **{**system.params, **sets})
    # BatchNorm's moving mean and variance: 208,586 - 207,818 = 768 more numbers in the Keras count
    running = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    assert running == (768 if sets["glu"] else 384)


def test_tagging_cnn_parameters():
    # by hand: convs 640 + 73,856 + 295,168, BN 2 x (64 + 128 + 256), dense 512 x 1024 + 1024, 1024 x 10 + 10
    assert describe.describe("sed_at", {})["n_params"] == 640 + 73_856 + 295_168 + 2 * 448 + 525_312 + 10_250 == 906_122


def test_crnn_refuses_mel_bands_that_do_not_pool_to_one():
    with pytest.raises(ValueError, match="40 mel bands .* needs exactly 1"):
        describe.describe("sed_crnn", {"input_shape": [1, 40, 100]})


def _keras_gru_reference(x, kernel, recurrent, bias):
    """Keras 2 GRUCell (reset_after=False, hard sigmoid), one direction, in numpy."""
    hsig = lambda v: np.clip(0.2 * v + 0.5, 0, 1)  # noqa: E731
    h = np.zeros((x.shape[0], recurrent.shape[0]))
    units = recurrent.shape[0]
    out = []
    for t in range(x.shape[1]):
        xz, xr, xh = (x[:, t] @ kernel[:, k * units:(k + 1) * units] + bias[k * units:(k + 1) * units]
                      for k in range(3))
        z = hsig(xz + h @ recurrent[:, :units])
        r = hsig(xr + h @ recurrent[:, units:2 * units])
        hh = np.tanh(xh + (r * h) @ recurrent[:, 2 * units:])
        h = z * h + (1 - z) * hh
        out.append(h)
    return np.stack(out, 1)


def test_keras_gru_follows_the_keras_cell_in_both_directions():
    torch.manual_seed(0)
    gru = KerasBiGRU(5, 4).eval()
    with torch.no_grad():
        gru.bias.normal_()
    x = torch.randn(3, 7, 5)
    with torch.no_grad():
        y = gru(x).numpy()
    k, u, b = (p.detach().double().numpy() for p in (gru.kernel, gru.recurrent_kernel, gru.bias))
    xn = x.double().numpy()
    forward = _keras_gru_reference(xn, k[0], u[0], b[0])
    backward = _keras_gru_reference(xn[:, ::-1], k[1], u[1], b[1])[:, ::-1]  # Keras reverses it back
    assert np.allclose(y, np.concatenate([forward, backward], -1), atol=1e-5)
    assert torch.equal(hard_sigmoid(torch.tensor([-3.0, 0.0, 1.0, 3.0])), torch.tensor([0.0, 0.5, 0.7, 1.0]))
    # dropout masks only in training, then the outputs change
    gru.dropout = gru.recurrent_dropout = 0.5
    with torch.no_grad():
        assert torch.allclose(gru(x), torch.from_numpy(y)) and not torch.allclose(gru.train()(x), torch.from_numpy(y))


# ------------------------------------------------------------------------------------------ losses

def test_cosine_penalty_against_scikit_learn_with_zero_curves():
    rng = np.random.default_rng(0)
    probs = rng.random((3, 20, 6)).astype(np.float32)
    probs[1, :, 2] = 0.0  # a positive class whose curve is all zeros: cosine 0 with everything, itself included
    y = np.array([[1, 0, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=np.float32)
    pen = cosine_penalty(torch.from_numpy(probs), torch.from_numpy(y)).numpy()
    for b in range(3):
        curves = (probs[b] * y[b]).T  # (classes, frames); negative classes are zero curves
        expected = cosine_similarity(curves, curves).sum(axis=-1) - y[b]
        assert np.allclose(pen[b], expected, atol=1e-5), b
    assert pen[1, 2] == pytest.approx(-1.0)  # 0 - y: a zero curve has no self-similarity of 1
    assert np.allclose(pen[2], 0.0)  # no positive class: no penalty
    # two positive classes with the same curve: 1 each beyond the self-similarity
    same = torch.ones(1, 5, 2)
    assert torch.allclose(cosine_penalty(same, torch.ones(1, 2)), torch.ones(1, 2))
    # the gradient exists at zero curves (no NaN from the norm)
    p = torch.from_numpy(probs).requires_grad_()
    cosine_penalty(p, torch.from_numpy(y)).sum().backward()
    assert torch.isfinite(p.grad).all()


def test_mil_loss_is_bce_of_the_max_plus_alpha_times_the_mean_penalty():
    torch.manual_seed(1)
    logits = torch.randn(4, 30, 5) * 3
    y = (torch.rand(4, 5) < 0.4).float()
    p = torch.sigmoid(logits.amax(1))
    bce = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
    assert torch.allclose(mil_loss(logits, y, alpha=0.0), bce.mean(), atol=1e-6)
    assert torch.allclose(mil_loss(logits, y, alpha=0.0, bce="logits"),
                          F.binary_cross_entropy_with_logits(logits.amax(1), y), atol=1e-6)
    pen = cosine_penalty(torch.sigmoid(logits), y)
    assert torch.allclose(mil_loss(logits, y, alpha=0.5), bce.mean() + 0.5 * pen.mean(), atol=1e-6)
    # Keras clips the probability at 1 - 1e-7 (float32): a saturated wrong maximum costs -log(1 - that), and gives
    # no gradient
    sat = torch.full((1, 3, 1), 40.0, requires_grad=True)
    loss = mil_loss(sat, torch.zeros(1, 1), alpha=0.0)
    loss.backward()
    assert loss.item() == pytest.approx(-np.log(1 - np.float32(1 - 1e-7)), rel=1e-5)
    assert sat.grad.abs().sum().item() == 0.0


# ------------------------------------------------------------------------------------------ post-processing

def test_smoothing_reflects_around_the_end_values():
    # the extension is 2 * x[0] - x[18 ... 0]: a point reflection that repeats the end value, so a line stays a
    # line except that the 9 frames at each end are pulled by (9 - j) / 19 of a step towards the end value
    ramp = np.arange(50.0)
    shift = np.r_[np.arange(9, 0, -1), np.zeros(32), -np.arange(1, 10)] / 19
    assert np.allclose(sed_postprocess.smooth(ramp, 19) - ramp, shift)
    spike = np.zeros(60)
    spike[30] = 19.0
    s = sed_postprocess.smooth(spike, 19)
    assert np.allclose(s[21:40], 1.0) and np.allclose(np.delete(s, range(21, 40)), 0.0)
    assert np.allclose(sed_postprocess.smooth(np.full(30, 0.7)), 0.7)
    with pytest.raises(ValueError, match="shorter than the 19-frame"):
        sed_postprocess.smooth(np.zeros(10))


def test_rescale_ignores_three_edge_frames():
    x = np.r_[5.0, -5.0, 9.0, np.linspace(1.0, 2.0, 10), 50.0, 0.0, -1.0]
    r = sed_postprocess.rescale(x)
    assert r[3] == 0.0 and r[12] == 1.0 and r[13] == 49.0  # min 1 and max 2 from frames 3 .. T-4 only
    assert np.array_equal(sed_postprocess.rescale(np.r_[0.0, 0, 0, np.full(5, 0.3), 1, 1, 1]), np.zeros(11))


@pytest.mark.parametrize("active, original, runs", [
    ([1, 1, 0, 0, 1, 0], [(0, 3), (4, 5)], [(0, 2), (4, 5)]),  # frame 0 counted twice: the first event one late
    ([0, 0, 1, 1, 0, 0, 1, 1, 0], [(3, 5), (6, 8)], [(2, 4), (6, 8)]),
    ([0, 1, 0, 1, 0, 1, 0], [(2, 3), (3, 4), (4, 5)], [(1, 2), (3, 4), (5, 6)]),  # then one earlier per change
    ([1, 1, 1], [(0, 4)], [(0, 3)]),
    ([0, 0, 0], [], []),
])
def test_decoding_counts_frames_as_the_encoder(active, original, runs):
    curve = np.array(active, dtype=float)[:, None] * 0.5
    fs = 0.1
    for counting, expected in (("original", original), ("runs", runs)):
        events = sed_postprocess.decode(curve, [0.03], fs, ["Dog"], {"counting": counting})
        assert events == [(pytest.approx(a * fs), pytest.approx(b * fs), "Dog") for a, b in expected], counting
    # the threshold is strict: a value equal to it is inactive
    assert sed_postprocess.decode(np.full((4, 1), 0.03), [0.03], fs, ["Dog"], {}) == []


def _preds(split, clip_ids, frames, y=None, scores=None, thresholds=None):
    y = np.zeros((len(clip_ids), frames.shape[2]), dtype=np.float32) if y is None else y
    return tasks.Predictions(split, clip_ids, {"y": y}, scores if scores is not None else frames.max(1), frames,
                             thresholds)


def test_postprocess_keeps_the_tagged_curves():
    rng = np.random.default_rng(3)
    frames = rng.random((2, 40, 3)).astype(np.float32)
    y = np.array([[1, 0, 0], [0, 1, 1]], dtype=np.float32)
    upstream = {"test": _preds("test", ["b", "a"], frames[:, :1], scores=np.array([[0.1, 0.9, 0.2], [0.7, 0.1, 0.5]]),
                               thresholds=np.array([0.5, 0.5, 0.5]))}
    out = sed_postprocess.postprocess({"test": _preds("test", ["a", "b"], frames, y)}, upstream, {})["test"]
    tagged = np.array([[1, 0, 1], [0, 1, 0]], dtype=bool)  # clip a: classes 0 and 2; clip b: class 1 (by clip id)
    assert np.array_equal(out.frames.max(1) > 0, tagged) and np.array_equal(out.scores > 0, tagged)
    expected = sed_postprocess.smooth(sed_postprocess.rescale(frames[0, :, 2]))
    assert np.allclose(out.frames[0, :, 2], expected, atol=1e-6)
    oracle = sed_postprocess.postprocess({"test": _preds("test", ["a", "b"], frames, y)}, None, {"tags": "oracle"})
    assert np.array_equal(oracle["test"].frames.max(1) > 0, y.astype(bool))
    with pytest.raises(ValueError, match="predictions_from: <the tagging experiment>"):
        sed_postprocess.postprocess({"test": _preds("test", ["a", "b"], frames, y)}, None, {})
    with pytest.raises(ValueError, match=r"no test predictions for 1 clip\(s\), e.g. \['c'\]"):
        sed_postprocess.postprocess({"test": _preds("test", ["a", "c"], frames, y)}, upstream, {})
    with pytest.raises(ValueError, match="params.tags"):
        sed_postprocess.postprocess({"test": _preds("test", ["a", "b"], frames, y)}, upstream, {"tags": "gt"})


def test_frame_duration_comes_from_the_spec():
    ten = FeatureSpec.from_config("s", SED_SPEC).resolved(10.0)
    five = FeatureSpec.from_config("s", SED_SPEC).resolved(5.0)
    assert ten.output_shape()[-1] == 431 and five.output_shape()[-1] == 216
    assert sed_postprocess.frame_seconds(ten, {}) == pytest.approx(10 / 431)  # the Encoder's 10 / nbFrame
    assert sed_postprocess.frame_seconds(five, {}) == pytest.approx(5 / 216)
    assert sed_postprocess.frame_seconds(ten, {"frame": "hop"}) == pytest.approx(512 / 22050)


def test_system_default_thresholds():
    assert configuration.threshold({"system": "sed_crnn"}) == 0.03
    assert configuration.threshold({"system": "sed_at"}) == {"method": "perturbation"}
    assert configuration.threshold({"system": "sed_crnn", "threshold": 0.3}) == 0.3
    assert configuration.threshold({"system": "smallcnn"}) == 0.5


# ------------------------------------------------------------------------------------------ the split option

def _weak_only_tree(root):
    (root / "metadata" / "train").mkdir(parents=True)
    (root / "metadata" / "test").mkdir(parents=True)
    weak = [("Ya_0.000_10.000.wav", "Dog"), ("Yb_0.000_10.000.wav", "Dog,Cat"), ("Yc_0.000_10.000.wav", "Dog"),
            ("Yd_0.000_10.000.wav", "Cat,Cat"), ("Ye_0.000_10.000.wav", "Cat")]
    (root / "metadata/train/weak.csv").write_text("filename\tevent_labels\n"
                                                  + "".join(f"{f}\t{labels}\n" for f, labels in weak))
    (root / "metadata/test/test.csv").write_text("filename\tonset\toffset\tevent_label\n"
                                                 "Yt_0.000_10.000.wav\t1\t2\tDog\n")
    return root


def test_original_split_duplicates_instances(tmp_path):
    root = _weak_only_tree(tmp_path)
    m = get_dataset("dcase2018_task4").parse(root, allow_missing_audio=True, split="original", validation_fraction=0.5)
    t = m.table.set_index("clip_id")
    # buckets: Dog [a, b, c] -> a validation; Cat [b, d, d, e] -> b, d validation
    assert t["split"].to_dict() == {
        "Ya_0.000_10.000": "validation", "Yb_0.000_10.000": "train", "Yb_0.000_10.000@Cat": "validation",
        "Yc_0.000_10.000": "train", "Yd_0.000_10.000": "validation", "Yd_0.000_10.000@Cat@2": "train",
        "Ye_0.000_10.000": "train", "Yt_0.000_10.000": "test"}
    assert t.loc["Yb_0.000_10.000@Cat", "labels"] == "Dog;Cat"
    assert t.loc["Yb_0.000_10.000@Cat", "group"] == "Yb_0.000_10.000"
    assert t.loc["Yb_0.000_10.000@Cat", "path"] == t.loc["Yb_0.000_10.000", "path"]
    clean = get_dataset("dcase2018_task4").parse(root, allow_missing_audio=True, validation_fraction=0.5)
    assert clean.table["clip_id"].is_unique and len(clean.table) == 6
    with pytest.raises(mf.ManifestError, match="split must be clean"):
        get_dataset("dcase2018_task4").parse(root, allow_missing_audio=True, split="balanced")


def test_original_split_on_the_real_metadata(shared_data, tmp_path):
    (tmp_path / "metadata").symlink_to(shared_data / "dcase2018_task4_meta")
    m = get_dataset("dcase2018_task4").parse(tmp_path, allow_missing_audio=True, split="original")
    weak = m.table[m.table["split"] != "test"]
    # 2,247 instances from 1,578 clips (the notebook loaded 1,763 + 438 = 2,201: the instances whose features it
    # had); 149 clips are in train and validation at once
    assert {s: int((weak["split"] == s).sum()) for s in ("train", "validation")} == {"train": 1802, "validation": 445}
    assert weak["group"].nunique() == 1578 and int((weak.groupby("group")["split"].nunique() > 1).sum()) == 149
    assert int((m.table["split"] == "test").sum()) == 288


# ------------------------------------------------------------------------------------------ reporting

def test_paper_yaml_carries_table_i():
    paper = yaml.safe_load((ROOT / "workflow/experiments/paper.yaml").read_text())
    exps = paper["experiments"]
    for name, column in (("sed_mil", "MIL"), ("sed_glu_mil", "GLU-MIL"), ("sed_glu_mil_cos", "+cos"),
                         ("sed_glu_mil_cos_oracle", "+AT oracle")):
        numbers = {k: v for k, v in exps[name]["paper"].items() if not k.startswith("1-best:")}
        assert numbers == table_i_paper(column), name
        assert len(exps[name]["seeds"]) >= 3 and exps[name]["dataset"] == "dcase2018_task4"
    for name, column in (("sed_glu_mil_cos", "+cos (1-best)"), ("sed_glu_mil_cos_oracle", "+AT oracle (1-best)")):
        best = {k.removeprefix("1-best:"): v for k, v in exps[name]["paper"].items() if k.startswith("1-best:")}
        assert best == table_i_paper(column)
    assert TABLE_I["+cos"][0] == 31.50 and exps["sed_glu_mil_cos_oracle"]["init_from"] == "sed_glu_mil_cos"
    assert paper["datasets"]["dcase2018_task4"]["allow_missing_audio"] is True
    assert paper["features"]["sed_crnn"] == SED_SPEC


def test_one_best_rows_and_per_class_figure(tmp_path):
    rows = []
    for seed, f in ((0, 0.30), (1, 0.36), (2, 0.33)):
        for metric, value, primary in (("f1_event_macro", f, True), ("f1_event/Dog", f + 0.1, False)):
            rows.append({"dataset": "d", "system": "sed_crnn", "variant": "cos", "seed": seed, "config_hash": "h",
                         "metric": metric, "value": value, "n_train": 5, "n_test": 3, "n_missing": 0,
                         "primary": primary, "paper": np.nan, "train_seconds": 1.0, "device": "cpu"})
    per_seed = pd.DataFrame(rows)
    runs = [{"variant": "cos", "seed": s, "paper": {"f1_event_macro": 0.315, "1-best:f1_event_macro": 0.3475,
                                                   "1-best:f1_event/Dog": 0.267}} for s in range(3)]
    best = sed_figures.one_best_rows(per_seed, runs).set_index("metric")
    assert set(best["variant"]) == {"cos (1-best)"} and best.loc["f1_event_macro", "mean"] == 0.36
    assert best.loc["f1_event/Dog", "mean"] == pytest.approx(0.46) and best.loc["f1_event/Dog", "paper"] == 0.267
    assert best.loc["f1_event_macro", "n_seeds"] == 3 and np.isnan(best.loc["f1_event_macro", "std"])
    assert sed_figures.one_best_rows(per_seed, [{"variant": "cos", "paper": {}}]).empty
    table = pd.DataFrame({"variant": ["cos", "cos", "other"],
                          "metric": ["f1_event/Dog", "f1_event/Cat", "f1_event/Dog"],
                          "mean": [0.4, 0.2, 0.1], "std": [0.05, np.nan, 0.0], "paper": [0.286, 0.473, np.nan]})
    assert sed_figures.per_class_event_f(table, tmp_path / "f.png") and (tmp_path / "f.png").stat().st_size > 1000
    assert sed_figures.per_class_event_f(table[table["variant"] == "other"], tmp_path / "ours.png")  # no paper
    assert not sed_figures.per_class_event_f(table.assign(metric="f1_event_macro"), tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


# ------------------------------------------------------------------------------------------ pass 1 -> pass 2

@pytest.fixture(scope="module")
def sed_demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sed_crnn")
    rel = make_demo("dcase2018_task4", tmp / "release", seed=2, weak_clips=40, test_clips=10, clip_seconds=3.0)
    for u in rel.unpack:
        extract([tmp / "release" / p for p in u.parts], tmp / "root" / u.dest, kind=u.kind, password=u.password)
    m = get_dataset("dcase2018_task4").parse(tmp / "root")
    mf.write(m, tmp / "manifest.csv")
    spec = FeatureSpec.from_config("sed", SED_SPEC).resolved(3.0)
    out = tmp / "shard-0.h5"
    extract_shard(tmp / "manifest.csv", spec, 0, 1, out, clip_seconds=3.0, progress=False,
                  skipped_path=tmp / "skipped.csv")
    return tmp, m, {"x": {"spec": {**SED_SPEC, "clip_seconds": 3.0}, "shards": [str(out)]}}


@pytest.mark.slow
def test_pass_one_to_pass_two(sed_demo, tmp_path):
    tmp, m, inputs = sed_demo
    man = tmp / "manifest.csv"
    at, crnn, oracle = tmp_path / "at", tmp_path / "crnn", tmp_path / "oracle"
    runner.train("dcase2018_task4", man, inputs, "sed_at", "multilabel", {"widths": [8, 8, 8], "dense": 16},
                 {"stages": [{"epochs": 2}]}, 0, at, at / "ck.pt", "cpu", progress=False)
    tagging = runner.evaluate(man, inputs, at / "model.pt", at, device="cpu")
    assert tagging["threshold"] == "perturbation on validation"  # the system's default threshold
    assert {"subset_accuracy", "hamming_loss", "f1_micro", "f1_macro"} <= set(tagging["metrics"])
    assert (at / "events.tsv").read_text() == "filename\tonset\toffset\tevent_label\n"  # no events for tagging
    small = {"channels": 4, "gru_units": 4, "dense_units": 4, "gru": "torch"}
    runner.train("dcase2018_task4", man, inputs, "sed_crnn", "sed", small, {"stages": [{"epochs": 1}]}, 0, crnn,
                 crnn / "ck.pt", "cpu", progress=False)
    with pytest.raises(ValueError, match="predictions_from"):
        runner.evaluate(man, inputs, crnn / "model.pt", crnn, device="cpu")
    out = runner.evaluate(man, inputs, crnn / "model.pt", crnn, device="cpu", predictions_from=at / "predictions.h5")
    assert out["threshold"] == "0.03" and out["primary"] == "f1_event_macro"
    assert {f"f1_event/{c}" for c in m.classes} <= set(out["metrics"])
    from soundbench.evaluation import predictions

    up, up_attrs = predictions.read(at / "predictions.h5")
    mine, attrs = predictions.read(crnn / "predictions.h5")
    assert attrs["frame_seconds"] == pytest.approx(3.0 / 130)  # clip length / frames, from the spec
    assert attrs["manifest"] == str(man) and attrs["inputs"]["x"]["n_mels"] == 64
    for split in ("validation", "test"):
        order = [up[split].clip_ids.index(c) for c in mine[split].clip_ids]
        tags = up[split].scores[order] >= np.array(up_attrs["thresholds"])
        assert tags.any() and np.array_equal(mine[split].frames.max(1) > 0, tags)  # the tagged classes' curves only
    # events.tsv is the DCASE format: sed_eval reads it as it is, and scores it as our metrics did
    from soundbench.evaluation.sed import _sed_eval

    sed_eval = _sed_eval()
    est = sed_eval.io.load_event_list(str(crnn / "events.tsv"))
    ref = sed_eval.io.load_event_list(str(tmp / "root/metadata/test/test.csv"))
    metric = sed_eval.sound_event.EventBasedMetrics(event_label_list=list(m.classes), t_collar=0.2,
                                                    percentage_of_length=0.2, empty_system_output_handling="zero_score")
    for f in ref.unique_files:
        metric.evaluate(ref.filter(filename=f), est.filter(filename=f))
    macro = metric.results()["class_wise_average"]["f_measure"]["f_measure"]
    assert macro == pytest.approx(out["metrics"]["f1_event_macro"], abs=1e-9, nan_ok=True)
    names = {p.split("/")[-1] for p in m.split("test")["path"]}
    assert set(pd.read_csv(crnn / "events.tsv", sep="\t")["filename"]) <= names
    # +AT oracle: the same model (init_from, 0 epochs), the true tags
    runner.train("dcase2018_task4", man, inputs, "sed_crnn", "sed", {**small, "tags": "oracle"},
                 {"stages": [{"epochs": 0}]}, 0, oracle, oracle / "ck.pt", "cpu", progress=False,
                 init_from=crnn / "model.pt")
    a, b = (torch.load(d / "model.pt", weights_only=False)["state_dict"] for d in (crnn, oracle))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert list(pd.read_csv(oracle / "history.csv").columns) == ["stage", "epoch", "lr", "train_loss"]
    runner.evaluate(man, inputs, oracle / "model.pt", oracle, device="cpu")
    truth, _ = predictions.read(oracle / "predictions.h5")
    y = m.table.set_index("clip_id").loc[truth["test"].clip_ids, "labels"].map(mf.split_labels)
    kept = truth["test"].frames.max(1) > 0
    for row, labels in zip(kept, y):
        assert {m.classes[k] for k in np.flatnonzero(row)} <= set(labels)
    # the figure of a few clips: log-mel over reference and detected events
    shown = sed_figures.event_timelines(crnn, tmp_path / "events.png", n_clips=2)  # manifest, spec: predictions.h5
    assert len(shown) == 2 and (tmp_path / "events.png").stat().st_size > 5000


@pytest.mark.slow
def test_second_pass_reads_the_first_pass_in_the_dag(tmp_path):
    """The demo's SED experiments: the evaluate jobs of pass 2 take pass 1's predictions.h5 (seed 0 for every seed),
    with the system thresholds, and write events.tsv."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["datasets"] = {"dcase2018_task4": config["datasets"]["dcase2018_task4"]}
    config["features"] = {"sed_crnn": config["features"]["sed_crnn"]}
    config["experiments"] = {k: v for k, v in config["experiments"].items()
                             if v["dataset"] == "dcase2018_task4" and v["feature"] == "sed_crnn"}
    assert set(config["experiments"]) >= {"dcase2018_task4_sed_at", "dcase2018_task4_glu_mil_cos",
                                          "dcase2018_task4_glu_mil"}
    jobs = planned(tmp_path, config)
    up = "results/dcase2018_task4/sed_at/dcase2018_task4_sed_at/seed-0/predictions.h5"
    second = [j for j in jobs if j["rule"] == "evaluate" and j["wildcards"]["system"] == "sed_crnn"]
    assert len(second) == 6 and all(up in j["input"] and arg(j["shell"], "--predictions-from") == up for j in second)
    assert {json.loads(arg(j["shell"], "--threshold")) for j in second} == {0.03}  # the system's (the paper's)
    first = next(j for j in jobs if j["rule"] == "evaluate" and j["wildcards"]["system"] == "sed_at")
    assert json.loads(arg(first["shell"], "--threshold")) == {"method": "perturbation"}
    trains = [j for j in jobs if j["rule"] == "train" and j["wildcards"]["system"] == "sed_crnn"]
    assert all(not any("sed_at" in i for i in j["input"]) for j in trains)  # training does not wait for pass 1
