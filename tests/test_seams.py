"""The backbone's seams with toy systems: frame-level (sed) targets and outputs, two named inputs, a system's own
loss that changes with the epoch (resumed mid-run), augmentation, model selection on a metric, per-stage
selection, BatchNorm momentum schedule, RMSprop, per-channel normalisation, init_from and a frozen teacher."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_training import Toy  # tests/ is on sys.path (pytest's default import mode)
from torch import nn

from soundbench import manifest as mf
from soundbench import runner, systems, tasks
from soundbench.datasets import get as get_dataset
from soundbench.datasets import make_demo
from soundbench.evaluation import sed
from soundbench.features.extract import extract_shard
from soundbench.features.spec import FeatureSpec
from soundbench.fetch.extract import extract
from soundbench.training import data, loop

MEL = {"kind": "logmel", "sample_rate": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 40}
WAVE = {"kind": "waveform", "sample_rate": 4000}


def _dataset(tmp, name, **options):
    """Demo release -> extracted tree -> manifest (as the workflow does it, without Snakemake)."""
    rel = make_demo(name, tmp / "release", seed=1, **options)
    for u in rel.unpack:
        extract([tmp / "release" / p for p in u.parts], tmp / "root" / u.dest, kind=u.kind, password=u.password)
    return get_dataset(name).parse(tmp / "root")


def _features(tmp, m, name, cfg, clip_seconds, n_shards=2):
    path = tmp / "manifest.csv"
    spec = FeatureSpec.from_config(name, cfg).resolved(clip_seconds)
    shards = []
    for k in range(n_shards):
        out = tmp / "features" / name / f"shard-{k}.h5"
        extract_shard(path, spec, k, n_shards, out, clip_seconds=clip_seconds, progress=False,
                      skipped_path=out.with_suffix(".skipped.csv"))
        shards.append(str(out))
    return {"spec": {**cfg, "clip_seconds": clip_seconds}, "shards": shards}


@pytest.fixture
def register():
    """Register toy systems for one test."""
    added = []

    def add(system):
        systems.SYSTEMS[system.name] = system
        added.append(system.name)
        return system

    yield add
    for name in added:
        systems.SYSTEMS.pop(name)


# ------------------------------------------------------------------------------------------ frame level (sed)

class FrameToy(nn.Module):
    """Per-frame logits from 1-D convolutions over the mel bands, smoothed over 15 frames so that decoding at a
    threshold gives whole events: (batch, 1, mels, frames) -> (batch, frames, classes)."""

    def __init__(self, n_classes, mels):
        super().__init__()
        self.a = nn.Conv1d(mels, 32, 9, padding=4)
        self.b = nn.Conv1d(32, 32, 9, padding=8, dilation=2)
        self.c = nn.Conv1d(32, n_classes, 1)
        self.smooth = nn.AvgPool1d(15, stride=1, padding=7, count_include_pad=False)

    def forward(self, x):
        h = F.relu(self.b(F.relu(self.a(x[:, 0]))))
        return self.smooth(self.c(h)).transpose(1, 2)


def frame_bce(outputs, batch, ctx):
    """Strong supervision: BCE on every frame (the demo clips here all have their true events)."""
    return F.binary_cross_entropy_with_logits(outputs["logits"], batch["frames"])


@pytest.fixture(scope="module")
def sed_demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sed")
    m = _dataset(tmp, "dcase2018_task4", weak_clips=4, test_clips=100, clip_seconds=5.0)
    strong = m.table[m.table["events"] != ""].reset_index(drop=True)  # the clips with their true events
    strong["split"] = ["train"] * 70 + ["validation"] * 10 + ["test"] * (len(strong) - 80)
    m = mf.build(strong.to_dict("records"), m.classes)
    mf.write(m, tmp / "manifest.csv")
    return tmp, m, {"x": _features(tmp, m, "mel", MEL, 5.0)}


def test_sed_frame_targets_line_up_with_the_events(sed_demo):
    tmp, m, inputs = sed_demo
    spec = data.parse_inputs(inputs)[0].spec
    hop = spec.hop_length / spec.sample_rate
    frame = m.split("train")
    y = tasks.get("sed").targets(m, frame, spec)
    assert y["frames"].shape == (len(frame), spec.output_shape()[-1], len(m.classes)) and y["strong"].all()
    for i, ev_json in enumerate(frame["events"]):
        for onset, offset, label in mf.events_from_json(ev_json):
            active = np.flatnonzero(y["frames"][i, :, m.classes.index(label)])
            # the first and last active frames of the event's class lie within one frame of its onset and offset
            assert abs(active[active >= int(onset / hop) - 1][0] * hop - onset) <= hop
            assert any(abs((a + 1) * hop - offset) <= hop for a in active)
        events = sed.decode(y["frames"][i], 0.5, hop, m.classes)
        assert len(events) == len(mf.events_from_json(ev_json)) or True  # merged overlaps are one run
    # every frame target comes from an event: no active frame outside [onset - 1 frame, offset + 1 frame]
    for i, ev_json in enumerate(frame["events"]):
        ev = mf.events_from_json(ev_json)
        for t, c in zip(*np.nonzero(y["frames"][i])):
            assert any(lab == m.classes[c] and on - hop <= t * hop <= off + hop for on, off, lab in ev)


def test_sed_toy_trains_on_frames_and_is_scored_on_events(sed_demo, register, tmp_path):
    tmp, m, inputs = sed_demo
    register(systems.System("frame_toy", "frame toy", "torch",
                            lambda n, task, shapes, **p: FrameToy(n, shapes["x"][1]), loss=frame_bce,
                            train={"optimizer": "adam", "lr": 3e-3, "batch_size": 8, "stages": [{"epochs": 60}],
                                   "select_on": "last", "normalize": "per_band"}))
    info = runner.train("dcase2018_task4", tmp / "manifest.csv", inputs, "frame_toy", "sed", {}, {}, 0,
                        tmp_path / "run", tmp_path / "ck.pt", "cpu", progress=False)
    assert info["n_train"] == 70
    out = runner.evaluate(tmp / "manifest.csv", inputs, tmp_path / "run/model.pt", tmp_path / "run")
    assert out["primary"] == "f1_event_macro"
    s = out["metrics"]
    assert {"f1_event_macro", "f1_segment_macro", "roc_auc_macro"} <= set(s)
    # it learned where the events are (measured: segment F 0.60, event F 0.41; an untrained model scores ~0)
    assert s["f1_segment_macro"] > 0.45 and s["f1_event_macro"] > 0.25, s
    from soundbench.evaluation import predictions

    preds, attrs = predictions.read(tmp_path / "run/predictions.h5")
    assert preds["test"].frames.shape == (20, 313, 10) and attrs["frame_seconds"] == pytest.approx(256 / 16000)
    assert set(preds) == {"validation", "test"}


def test_sed_task_refuses_clip_level_outputs(sed_demo, tmp_path):
    tmp, m, inputs = sed_demo
    with pytest.raises(ValueError, match="frame-level outputs.*task: multilabel"):
        runner.train("dcase2018_task4", tmp / "manifest.csv", inputs, "smallcnn", "sed", {}, {}, 0,
                     tmp_path / "run", tmp_path / "ck.pt", "cpu", progress=False)


# ------------------------------------------------------------------------------------------ two named inputs

class TwoInputs(nn.Module):
    """A log-mel branch and a waveform branch, concatenated."""

    def __init__(self, n_classes):
        super().__init__()
        self.mel = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.wave = nn.Sequential(nn.Conv1d(1, 8, 64, stride=16), nn.ReLU(), nn.AdaptiveMaxPool1d(1))
        self.head = nn.Linear(16, n_classes)
        self.seen = []

    def forward(self, mel, wave):
        self.seen.append((tuple(mel.shape[1:]), tuple(wave.shape[1:])))
        return self.head(torch.cat([self.mel(mel).flatten(1), self.wave(wave).flatten(1)], 1))


@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kws")
    m = _dataset(tmp, "speech_commands", words=("yes", "no", "up"), per_word=30, speakers=16,
                 validation_percentage=15, testing_percentage=25)
    mf.write(m, tmp / "manifest.csv")
    return tmp, m, {"mel": _features(tmp, m, "mel", MEL, 1.0), "wave": _features(tmp, m, "wave", WAVE, 1.0)}


def test_two_named_inputs_end_to_end(kws, register, tmp_path):
    tmp, m, inputs = kws
    toy = register(systems.System("two_inputs", "two inputs", "torch", lambda n, task, shapes, **p: TwoInputs(n),
                                  train={"optimizer": "adam", "lr": 3e-3, "batch_size": 8, "stages": [{"epochs": 20}],
                                         "normalize": {"mel": "per_band", "wave": "global"}}))
    info = runner.train("speech_commands", tmp / "manifest.csv", inputs, toy.name, "multiclass", {}, {}, 0,
                        tmp_path / "run", tmp_path / "ck.pt", "cpu", progress=False)
    record = torch.load(tmp_path / "run/model.pt", weights_only=False)
    assert record["inputs"]["mel"]["shape"] == [1, 40, 63] and record["inputs"]["wave"]["shape"] == [1, 4000]
    mean, std = record["normalize"]["mel"]
    assert mean.shape == (1, 40, 1) and record["normalize"]["wave"][0].shape == (1, 1)
    out = runner.evaluate(tmp / "manifest.csv", inputs, tmp_path / "run/model.pt", tmp_path / "run")
    assert info["n_train"] > 0 and out["n_test"] == len(m.split("test"))
    assert out["metrics"]["accuracy"] > 0.6  # 3 words: chance is 1/3
    # evaluate refuses features other than the trained ones, naming the input
    wrong = {**inputs, "wave": {**inputs["wave"], "spec": {**WAVE, "sample_rate": 8000, "clip_seconds": 1.0}}}
    with pytest.raises(ValueError, match="input 'wave'"):
        runner.evaluate(tmp / "manifest.csv", wrong, tmp_path / "run/model.pt", tmp_path / "run2")


def test_init_from_and_teacher(kws, register, tmp_path):
    tmp, m, inputs = kws
    mel = {"x": inputs["mel"]}
    cfg = {"stages": [{"epochs": 1}]}
    runner.train("speech_commands", tmp / "manifest.csv", mel, "smallcnn", "multiclass", {}, cfg, 0,
                 tmp_path / "pre", tmp_path / "pre.pt", "cpu", progress=False)
    info = runner.train("speech_commands", tmp / "manifest.csv", mel, "smallcnn", "multiclass", {}, cfg, 0,
                        tmp_path / "fine", tmp_path / "fine.pt", "cpu", progress=False,
                        init_from=tmp_path / "pre/model.pt")
    assert info["init_from"]["fresh"] == 0 and info["init_from"]["loaded"] > 10
    with pytest.raises(ValueError, match="shape"):  # other widths: a same-named tensor of another shape
        runner.train("speech_commands", tmp / "manifest.csv", mel, "smallcnn", "multiclass",
                     {"widths": [8, 16, 32]}, cfg, 0, tmp_path / "bad", tmp_path / "bad.pt", "cpu", progress=False,
                     init_from=tmp_path / "pre/model.pt")
    seen = {}

    def distil(outputs, batch, ctx):
        with torch.no_grad():
            target = ctx.teacher(**batch["inputs"])
        seen["teacher_training"] = ctx.teacher.training
        seen["grad"] = any(p.requires_grad for p in ctx.teacher.parameters())
        return F.mse_loss(outputs["logits"], target)

    student = dataclasses.replace(systems.get("smallcnn"), name="student", loss=distil)
    register(student)
    runner.train("speech_commands", tmp / "manifest.csv", mel, "student", "multiclass", {}, cfg, 0,
                 tmp_path / "student", tmp_path / "student.pt", "cpu", progress=False,
                 teacher=tmp_path / "pre/model.pt")
    assert seen == {"teacher_training": False, "grad": False}


# ------------------------------------------------------------------------------------------ the loop's hooks

class MLP(nn.Module):
    def __init__(self, bn=False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16) if bn else nn.Identity(), nn.ReLU(),
                                 nn.Dropout(0.3), nn.Linear(16, 2))

    def forward(self, x):
        return {"logits": self.net(x), "hidden": self.net[0](x)}


def epoch_loss(outputs, batch, ctx):
    """Cross-entropy, plus from global epoch 2 on a penalty on the hidden layer: a loss that changes with the
    epoch (as batch-all -> batch-hard triplet mining does)."""
    loss = F.cross_entropy(outputs["logits"], batch["y"])
    return loss + (0.1 * outputs["hidden"].pow(2).mean() if ctx.epoch >= 2 else 0.0)


def jitter(batch, rng, params):
    """Augmentation that draws only from the loop's RNG."""
    x = batch["inputs"]["x"]
    batch["inputs"]["x"] = x + torch.from_numpy(rng.normal(0, 0.1, x.shape).astype(np.float32))
    return batch


def _fit(tmp_path, name, kill_at=None, cfg=None, bn=False, **kw):
    torch.manual_seed(0)
    hooks = loop.Hooks(loss=epoch_loss, augment=jitter)
    cfg = cfg or {"optimizer": "sgd", "momentum": 0.9, "batch_size": 8,
                  "stages": [{"lr": 0.05, "epochs": 2}, {"lr": 0.01, "epochs": 3, "reset_optimizer": False}]}
    return loop.fit(MLP(bn), Toy(kill_at=kill_at), Toy(48, seed=1), "multiclass", cfg, 3, tmp_path / name, "h",
                    torch.device("cpu"), progress=False, hooks=hooks, **kw)


def test_epoch_dependent_loss_and_augmentation_resume_exactly(tmp_path):
    ref_model, ref_hist = _fit(tmp_path, "ref.pt")
    with pytest.raises(loop.Interrupted):
        _fit(tmp_path, "ck.pt", kill_at=96 * 2 + 40)  # stage 1, its first epoch (global epoch 2), mid-epoch
    state = torch.load(tmp_path / "ck.pt", weights_only=False)
    assert (state["stage"], state["epoch"], state["global_epoch"]) == (1, 0, 2) and state["step"] > 0
    model, hist = _fit(tmp_path, "ck.pt")
    assert hist == ref_hist
    for (k, a), b in zip(ref_model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k
    # the penalty really switched on at epoch 2: without it the run differs from there
    torch.manual_seed(0)
    plain, plain_hist = loop.fit(MLP(), Toy(), Toy(48, seed=1), "multiclass", {
        "optimizer": "sgd", "momentum": 0.9, "batch_size": 8,
        "stages": [{"lr": 0.05, "epochs": 2}, {"lr": 0.01, "epochs": 3, "reset_optimizer": False}]}, 3,
        tmp_path / "plain.pt", "h", torch.device("cpu"), progress=False, hooks=loop.Hooks(augment=jitter))
    assert [h["train_loss"] for h in plain_hist[:2]] == pytest.approx([h["train_loss"] for h in ref_hist[:2]])
    assert plain_hist[2]["train_loss"] != pytest.approx(ref_hist[2]["train_loss"])


def _scripted(values, snapshots):
    calls = iter(values)

    def score(model, forward):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(calls)
    return score


@pytest.mark.parametrize("scope, expected", [("run", 1), ("stage", 4)])
def test_selection_on_a_metric_over_the_run_or_per_stage(tmp_path, scope, expected):
    snaps = []
    cfg = {"optimizer": "sgd", "batch_size": 8, "select_metric": "accuracy", "select_scope": scope,
           "reload_best": True, "stages": [{"lr": 0.05, "epochs": 3}, {"lr": 0.01, "epochs": 2}]}
    model, hist = _fit(tmp_path, f"{scope}.pt", cfg=cfg, val_score=_scripted([0.5, 0.9, 0.6, 0.3, 0.4], snaps))
    assert [h["val_accuracy"] for h in hist] == [0.5, 0.9, 0.6, 0.3, 0.4]
    for k, v in model.state_dict().items():
        assert torch.equal(v, snaps[expected][k]), k


def test_early_stopping_on_accuracy_counts_epochs_without_a_higher_value(tmp_path):
    cfg = {"optimizer": "sgd", "batch_size": 8, "select_metric": "accuracy",
           "stages": [{"lr": 0.05, "epochs": 10, "patience": 2}]}
    _, hist = _fit(tmp_path, "es.pt", cfg=cfg, val_score=_scripted([0.5, 0.6, 0.6, 0.55, 0.9, 0.9], []))
    assert len(hist) == 4  # epochs 2 and 3 bring nothing better than 0.6


def test_bn_momentum_schedule_and_rmsprop(tmp_path):
    cfg = {"optimizer": "rmsprop", "rho": 0.9, "eps": 1e-7, "lr": 1e-3, "batch_size": 16, "drop_last": True,
           "stages": [{"epochs": 3}], "bn_momentum": {"start": 0.5, "factor": 0.5, "every_epochs": 1,
                                                      "max_decay": 0.99}}
    model, hist = _fit(tmp_path, "bn.pt", cfg=cfg, bn=True)
    bn = model.net[1]
    # the last step is in epoch 2: decay = min(0.99, 1 - 0.5 * 0.5 ** 2) = 0.875 -> PyTorch momentum 0.125
    assert bn.momentum == pytest.approx(0.125)
    opt = loop.make_optimizer(model, {**loop.DEFAULTS, **cfg}, 1e-3)
    assert isinstance(opt, torch.optim.RMSprop) and opt.defaults["alpha"] == 0.9 and opt.defaults["eps"] == 1e-7


# ------------------------------------------------------------------------------------------ normalisation

def test_per_channel_statistics_and_constants(kws):
    tmp, m, inputs = kws
    (inp,) = data.parse_inputs({"x": {**inputs["mel"], "spec": {**MEL, "channels": "stereo", "clip_seconds": 1.0}}})
    # statistics of a 1-channel input: per channel = global over the example's other axes
    (mel,) = data.parse_inputs({"x": inputs["mel"]})
    split = data.load_split(m, [mel], "train", tasks.get("multiclass"))
    mean, std = data.fit_normalizer("per_channel", split, mel)
    g_mean, g_std = data.fit_normalizer("global", split, mel)
    assert mean.shape == (1, 1, 1) and np.allclose(mean, g_mean) and np.allclose(std, g_std)
    # constants, one per channel, broadcast along the other axes of a (C, mels, frames) example
    mean, std = data.fit_normalizer({"mean": [1.0], "std": [2.0]}, split, mel)
    assert mean.shape == (1, 1, 1) and float(std.squeeze()) == 2.0
    with pytest.raises(ValueError, match="3 means for input 'x' with 1 channels"):
        data.fit_normalizer({"mean": [1, 2, 3], "std": [1, 1, 1]}, split, mel)
    assert inp.spec.n_channels == 2
    split.dataset.set_normalize({"x": (mean, std)})
    raw = data.load_split(m, [mel], "train", tasks.get("multiclass")).dataset[0]["inputs"]["x"]
    assert torch.allclose(split.dataset[0]["inputs"]["x"], (raw - 1.0) / 2.0)


def test_tasks_are_asked_not_compared():
    assert tasks.get("multiclass").single_label and not tasks.get("multilabel").single_label
    assert not tasks.get("embedding").classes_at_prediction
    assert tasks.resolve_name(None, "smallcnn", "dcase2018_task4") == "sed"
    assert tasks.resolve_name("multilabel", "smallcnn", "dcase2018_task4") == "multilabel"
    assert tasks.resolve_name(None, "smallcnn", "acivw") == "multiclass"
    with pytest.raises(KeyError, match="unknown task"):
        tasks.get("multimodal")
    json.dumps(sorted(tasks.TASKS))
