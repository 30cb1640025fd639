"""SubSpectralNet: parameter counts derived by hand, the layer list (bands, frequency BatchNorm, global classifier),
the n + 1 losses, the variants, both selection protocols on the demo, the confusion figures, paper.yaml, and the
real TAU clips through the `local` source."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from workflow_runs import ROOT, planned, snakemake

from soundbench import cli, describe, systems
from soundbench.features.paper_specs import PAPER_SPECS, paper_spec
from soundbench.features.spec import FeatureSpec
from soundbench.models import subspectralnet as ssn
from soundbench.reporting import aggregate
from soundbench.training import loop

# ---------------------------------------------------------------------------------------- parameter counts by hand
# Layer list of one band (seed-specs 3.4), input S rows x 500 frames x 2 channels (L, R), 10 classes:
#   Conv 32, 7x7, bias          7*7*2*32 + 32            =   3,168
#   BatchNorm over the S rows   gamma + beta: 2*S        =     2*S   (moving mean/var are not trainable)
#   MaxPool (S/10, 5)           -> 10 rows x 100 frames x 32
#   Conv 64, 7x7, bias          7*7*32*64 + 64           = 100,416
#   BatchNorm over the 10 rows  2*10                     =      20
#   MaxPool (4, 100)            -> 2 rows x 1 frame x 64 = 128 values
#   Dense 32                    128*32 + 32              =   4,128
#   Dense 10 (sub-classifier)   32*10 + 10               =     330
#   one band: 3,168 + 100,416 + 20 + 4,128 + 330 = 108,062, plus 2*S
#     S = 10: 108,082   S = 20: 108,102   S = 30: 108,122   S = 40: 108,142   S = 80: 108,222   S = 200: 108,462
# Global classifier on n*32 inputs: Dense 2^k, 2^(k-1), ..., 64 (k = floor(log2(n*32))), then Dense 10:
#   n = 3  (96):  96*64+64 = 6,208;                                  + 64*10+10 = 650   ->   6,858
#   n = 4  (128): 128*128+128 = 16,512; 128*64+64 = 8,256;           + 650             ->  25,418
#   n = 9  (288): 288*256+256 = 73,984; 256*128+128 = 32,896; 8,256; + 650             -> 115,786
#   n = 18 (576): 576*512+512 = 295,424; 512*256+256 = 131,328; 32,896; 8,256; + 650   -> 468,554
#   n = 19 (608): 608*512+512 = 311,808; 131,328; 32,896; 8,256; + 650                 -> 484,938
# Totals (n bands, M/S/h):
#   40/20/10   n = 3:   3*108,102 + 6,858     =   331,164  (seed-specs 3.4 "about 331 k"; 7: re-derived)
#   40/10/10   n = 4:   4*108,082 + 25,418    =   457,746  ("about 458 k")
#   200/20/10  n = 19: 19*108,102 + 484,938   = 2,538,876  ("about 2.54 M")
#   200/30/10  n = 18: 18*108,122 + 468,554   = 2,414,750  ("about 2.41 M")
#   200/40/20  n = 9:   9*108,142 + 115,786   = 1,089,064  ("about 1.09 M")
#   200/80/40  n = 4:   4*108,222 + 25,418    =   458,306
#   "200 Baseline" (one band of 200 bins, its own classifier only, no global classifier): 108,462
#   "No Separate Classifiers" 40/20/10 (no Dense 10 per band): 331,164 - 3*330 = 330,174
#   40/20/10 with channel BatchNorm: per band 2*32 + 2*64 = 192 instead of 2*20 + 2*10 = 60: 331,164 + 3*132
#     = 331,560
HAND = [
    ({"n_mels": 40, "sub_size": 20, "sub_hop": 10}, 331_164, 3),
    ({"n_mels": 40, "sub_size": 10, "sub_hop": 10}, 457_746, 4),
    ({"n_mels": 200, "sub_size": 20, "sub_hop": 10}, 2_538_876, 19),
    ({"n_mels": 200, "sub_size": 30, "sub_hop": 10}, 2_414_750, 18),
    ({"n_mels": 200, "sub_size": 40, "sub_hop": 20}, 1_089_064, 9),
    ({"n_mels": 200, "sub_size": 80, "sub_hop": 40}, 458_306, 4),
    ({"n_mels": 200, "sub_size": 200, "sub_hop": 10, "global_classifier": False}, 108_462, None),
    ({"n_mels": 40, "sub_size": 20, "sub_hop": 10, "sub_classifiers": False}, 330_174, None),
    ({"n_mels": 40, "sub_size": 20, "sub_hop": 10, "bn": "channel"}, 331_560, 3),
]


@pytest.mark.parametrize("sets,expected,n_sub", HAND, ids=[str(h[1]) for h in HAND])
def test_parameter_counts_derived_by_hand(sets, expected, n_sub):
    params = {k: v for k, v in sets.items() if k != "n_mels"}
    model = ssn.build(10, systems.get("subspectralnet").input_shapes(sets), **params)
    assert ssn.count_parameters(model) == expected
    assert (model.n if model.has_sub else None) == n_sub


def test_describe_model_runs_the_paper_input():
    d = describe.describe("subspectralnet", {"n_mels": 40, "sub_size": 10, "sub_hop": 10})
    assert d["n_params"] == 457_746 and d["input_shapes"] == {"x": [2, 40, 500]}
    assert d["outputs"] == {"logits": [10], "sub": [4, 10]}
    d = describe.describe("subspectralnet", {"n_mels": 40, "sub_classifiers": False})
    assert d["n_params"] == 330_174 and d["outputs"] == {"logits": [10]}


def test_describe_model_command_prints_count_and_output_shapes(capsys):
    cli.main(["describe-model", "subspectralnet", "--set", "n_mels=40", "--set", "sub_size=20", "--set",
              "sub_hop=10"])
    out = json.loads(capsys.readouterr().out)
    assert out["n_params"] == 331_164
    assert out["outputs"] == {"logits": [10], "sub": [3, 10]}


def test_bands_and_global_widths():
    assert [ssn.n_bands(m, s, h) for m, s, h in [(40, 20, 10), (40, 10, 10), (200, 20, 10), (200, 30, 10),
                                                 (200, 40, 20), (200, 80, 40), (200, 200, 10)]] == \
        [3, 4, 19, 18, 9, 4, 1]
    assert ssn.global_widths(96) == [64]
    assert ssn.global_widths(128) == [128, 64]
    assert ssn.global_widths(608) == [512, 256, 128, 64]
    assert ssn.global_widths(32) == []
    model = ssn.build(10, {"x": (2, 40, 500)})
    assert model.band_slices() == [(0, 20), (10, 30), (20, 40)]
    widths = [m.out_features for m in model.global_classifier if isinstance(m, torch.nn.Linear)]
    assert widths == [64, 10]


def test_each_band_sees_only_its_rows():
    torch.manual_seed(0)
    model = ssn.build(10, {"x": (2, 40, 500)}).eval()
    x = torch.randn(2, 2, 40, 500)
    y = x.clone()
    y[:, :, 0:10] += 5.0  # rows 0-9 belong to band 0 only (bands 0-19, 10-29, 20-39)
    with torch.no_grad():
        fx = [b(x[:, :, a:e])[0] for b, (a, e) in zip(model.bands, model.band_slices())]
        fy = [b(y[:, :, a:e])[0] for b, (a, e) in zip(model.bands, model.band_slices())]
        assert not torch.allclose(fx[0], fy[0])
        assert torch.equal(fx[1], fy[1]) and torch.equal(fx[2], fy[2])
        out = model(x)
    assert out["logits"].shape == (2, 10) and out["sub"].shape == (2, 3, 10)


def test_frequency_batchnorm_normalises_each_row():
    torch.manual_seed(0)
    model = ssn.build(10, {"x": (2, 40, 500)})
    band = model.bands[0]
    assert band.bn1.bn.num_features == 20 and band.bn2.bn.num_features == 10  # S rows, then S / (S/10) rows
    assert band.bn1.bn.eps == 1e-3 and band.bn1.bn.momentum == pytest.approx(0.01)  # Keras: decay 0.99
    x = torch.randn(4, 32, 20, 50) * torch.linspace(0.5, 4, 20)[:, None] + torch.arange(20.0)[:, None]
    for layout in (torch.contiguous_format, torch.channels_last):
        y = band.bn1.train()(x.contiguous(memory_format=layout))
        assert torch.allclose(y.mean(dim=(0, 1, 3)), torch.zeros(20), atol=1e-5)
        assert torch.allclose(y.var(dim=(0, 1, 3), unbiased=False), torch.ones(20), atol=1e-2)
    channel = ssn.build(10, {"x": (2, 40, 500)}, bn="channel").bands[0]
    assert channel.bn1.num_features == 32 and channel.bn2.num_features == 64


def test_memory_format_changes_only_rounding():
    """train.channels_last changes no dropout mask (nn.Dropout draws its mask in memory order; ours in logical
    order) and no statistic of the frequency BatchNorm: a training step's outputs agree to rounding."""
    torch.manual_seed(0)
    model = ssn.build(10, {"x": (2, 40, 500)}).train()
    x = torch.randn(3, 2, 40, 500)
    torch.manual_seed(1)
    plain = model(x)
    model.to(memory_format=torch.channels_last)
    torch.manual_seed(1)
    last = model(x.contiguous(memory_format=torch.channels_last))
    for key in ("logits", "sub"):
        assert torch.allclose(plain[key], last[key], atol=1e-4), key


def test_loss_is_the_sum_of_n_plus_one_cross_entropies():
    torch.manual_seed(0)
    model = ssn.build(10, {"x": (2, 40, 500)})
    out = {"logits": torch.randn(5, 10), "sub": torch.randn(5, 3, 10)}
    y = torch.tensor([0, 3, 9, 3, 1])
    want = F.cross_entropy(out["logits"], y) + sum(F.cross_entropy(out["sub"][:, i], y) for i in range(3))
    ctx = loop.LossContext(0, 0, {"bn_l2": 0.0}, model=model)
    assert torch.allclose(ssn.loss(out, {"y": y}, ctx), want)
    # Keras' l2(1e-4) on every gamma and beta: at initialisation gamma = 1, beta = 0, and 3 bands hold
    # 20 + 10 gammas each, so the penalty is 1e-4 * 90
    ctx = loop.LossContext(0, 0, {"bn_l2": 1e-4}, model=model)
    assert (ssn.loss(out, {"y": y}, ctx) - want).item() == pytest.approx(1e-4 * 90, rel=1e-4)
    # the system's hook is this loss, with the system's default bn_l2
    system = systems.get("subspectralnet")
    ctx = loop.LossContext(0, 0, system.params, model=model)
    assert torch.allclose(system.loss(out, {"y": y}, ctx), want + 1e-4 * 90)


def test_variants_and_their_errors():
    single = ssn.build(10, {"x": (2, 200, 500)}, sub_size=200, global_classifier=False)
    assert set(single(torch.zeros(2, 2, 200, 500))) == {"logits"} and single.global_classifier is None
    nosub = ssn.build(10, {"x": (2, 40, 500)}, sub_classifiers=False)
    out = nosub(torch.zeros(2, 2, 40, 500))
    assert set(out) == {"logits"}
    y = torch.tensor([1, 2])
    assert torch.allclose(ssn.loss(out, {"y": y}, loop.LossContext(0, 0, {})), F.cross_entropy(out["logits"], y))
    with pytest.raises(ValueError, match="global_classifier: false .* needs one band"):
        ssn.build(10, {"x": (2, 40, 500)}, global_classifier=False)
    with pytest.raises(ValueError, match="cannot both be false"):
        ssn.build(10, {"x": (2, 40, 500)}, global_classifier=False, sub_classifiers=False)
    with pytest.raises(ValueError, match="params.sub_size: 25 is not a multiple of 10"):
        ssn.build(10, {"x": (2, 40, 500)}, sub_size=25)
    with pytest.raises(ValueError, match="params.n_mels: 200 but the feature has 40"):
        ssn.build(10, {"x": (2, 40, 500)}, n_mels=200)
    with pytest.raises(ValueError, match=r"params.pool_time \[5, 100\].*150"):
        ssn.build(10, {"x": (2, 40, 150)})
    with pytest.raises(ValueError, match="params.bn"):
        ssn.build(10, {"x": (2, 40, 500)}, bn="time")


def test_feature_specs_are_the_papers():
    """paper.yaml's ssn40 / ssn200 and the demo's ssn40 are the `subspectralnet` spec (seed-specs 3.3)."""
    paper = yaml.safe_load((ROOT / "workflow/experiments/paper.yaml").read_text())
    for name, mels in (("ssn40", 40), ("ssn200", 200)):
        spec = FeatureSpec.from_config(name, paper["features"][name]).resolved(10.0)
        assert spec.hash() == paper_spec("subspectralnet", n_mels=mels).hash()
    demo = yaml.safe_load((ROOT / "config.yaml").read_text())
    spec = FeatureSpec.from_config("ssn40", demo["features"]["ssn40"]).resolved(3.0)
    assert spec.hash() == FeatureSpec.from_config("x", {**paper["features"]["ssn40"], "n_frames": 150}) \
        .resolved(3.0).hash()


def test_paper_config_lists_every_variant_with_three_seeds(tmp_path):
    paper = yaml.safe_load((ROOT / "workflow/experiments/paper.yaml").read_text())
    jobs = planned(tmp_path, paper)
    trained = {(j["wildcards"]["variant"], j["wildcards"]["seed"]) for j in jobs if j["rule"] == "train"}
    configs = ["40.20.10", "40.10.10", "200.20.10", "200.30.10", "200.40.20", "200.80.40", "200-baseline",
               "40.20.10-no-sub"]
    want = {(f"ssn_{c}_{p}-selected", str(s)) for c in configs for p in ("test", "val") for s in (0, 1, 2)}
    assert want <= trained
    exps = paper["experiments"]
    for c in configs:  # the paper column on the test-selected rows (the protocol of the logs' numbers)
        assert 0.6 < exps[f"ssn_{c}_test-selected"]["paper"]["accuracy"] < 0.75
        assert exps[f"ssn_{c}_val-selected"]["train"] == {"select_on": "validation", "train_on": ["train"]}
    assert exps["ssn_40.20.10_test-selected"]["paper"]["accuracy"] == 0.7218  # the README's "average-best"


# ------------------------------------------------------------------------------ confusion and per-class accuracy
def _fake_run(tmp, variant, seed, classes, clip_labels, predicted, task="multiclass"):
    run_dir = tmp / "results" / "ds" / "sys" / variant / f"seed-{seed}"
    run_dir.mkdir(parents=True)
    scores = np.eye(len(classes))[[classes.index(p) for p in predicted]]
    table = pd.DataFrame(scores, columns=classes)
    table.insert(0, "clip_id", list(clip_labels))
    table.to_csv(run_dir / "predictions.csv", index=False)
    (run_dir / "metrics.json").write_text(json.dumps({"split": "test"}))
    return {"dataset": "ds", "system": "sys", "variant": variant, "seed": seed, "run_dir": str(run_dir),
            "task": task, "manifest": str(tmp / "results" / "ds" / "manifest.csv")}


def test_confusion_and_per_class_accuracy_by_hand(tmp_path):
    from soundbench import manifest as mf

    classes = ["a", "b", "c"]
    labels = {"x1": "a", "x2": "a", "x3": "b", "x4": "c"}
    rows = [{"clip_id": c, "path": f"/nowhere/{c}.wav", "split": "test", "labels": lab} for c, lab in labels.items()]
    (tmp_path / "results" / "ds").mkdir(parents=True)
    mf.write(mf.build(rows, classes), tmp_path / "results" / "ds" / "manifest.csv")
    runs = [_fake_run(tmp_path, "v", 0, classes, labels, ["a", "b", "b", "c"]),
            _fake_run(tmp_path, "v", 1, classes, labels, ["a", "a", "c", "c"]),
            _fake_run(tmp_path, "tags", 0, classes, labels, ["a", "a", "b", "c"], task="multilabel")]
    confusion, classes_of = aggregate.confusions(runs)
    assert classes_of == {"ds": classes} and set(confusion["variant"]) == {"v"}  # single-label runs only
    seed0 = confusion[confusion["seed"] == 0].set_index(["true", "predicted"])["count"]
    assert seed0[("a", "a")] == 1 and seed0[("a", "b")] == 1 and seed0[("b", "b")] == 1 and seed0.sum() == 4
    acc = aggregate.class_accuracy(confusion).set_index("class")
    # class a: 1/2 (seed 0), 2/2 (seed 1); b: 1, 0; c: 1, 1
    assert acc.loc["a", "mean"] == pytest.approx(0.75) and acc.loc["b", "mean"] == pytest.approx(0.5)
    assert acc.loc["c", "mean"] == 1.0 and acc.loc["a", "n_clips"] == 2
    assert acc.loc["b", "std"] == pytest.approx(math.sqrt(0.5))
    per_seed = pd.DataFrame({"dataset": "ds", "variant": "v", "metric": "accuracy", "value": [0.75, 0.75]})
    written = aggregate.class_figures(runs, per_seed, tmp_path / "results", tmp_path)
    assert [p.name for p in written] == ["confusion_ds.png", "per_class_accuracy_ds.png"]
    assert all(p.stat().st_size > 5000 for p in written)
    bad = _fake_run(tmp_path, "w", 0, ["a", "c", "b"], labels, ["a", "a", "b", "c"])
    with pytest.raises(ValueError, match="class columns .* are not the classes of"):
        aggregate.confusions([bad])


# ------------------------------------------------------------------- the demo: both protocols through Snakemake
DEMO_SPEC = {"kind": "logmel", "sample_rate": 48000, "channels": "stereo", "n_fft": 2048, "win_length": 1920,
             "hop_length": 960, "window": "hamming_asym", "power": 1.0, "n_mels": 40, "log": "ln",
             "log_eps": 2.220446049250313e-16, "n_frames": 150}
SMALL = {"channels": [8, 16], "pool_time": [5, 30], "dropout": 0.1, "bn_decay": 0.9}


@pytest.mark.slow
def test_both_protocols_on_the_demo(tmp_path):
    config = {
        "datasets": {"dcase2018_task1a": {"source": "demo", "clip_seconds": 3, "demo": {"clips_per_scene": 10},
                                          "parse": {"validation": "holdout", "validation_fraction": 0.2}}},
        "features": {"ssn40": DEMO_SPEC},
        "experiments": {
            "ssn_test-selected": {"system": "subspectralnet", "dataset": "dcase2018_task1a", "feature": "ssn40",
                                  "params": SMALL, "train": {"stages": [{"epochs": 2}]}},
            "ssn_val-selected": {"system": "subspectralnet", "dataset": "dcase2018_task1a", "feature": "ssn40",
                                 "params": SMALL, "train": {"stages": [{"epochs": 2}], "select_on": "validation",
                                                            "train_on": ["train"]}},
        },
    }
    r = snakemake(tmp_path, config, "--cores", "2", "results/tables.csv")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = pd.read_csv(tmp_path / "results/dcase2018_task1a/manifest.csv")
    n = m["split"].value_counts()
    table = pd.read_csv(tmp_path / "results/tables.csv")
    acc = table[table["metric"] == "accuracy"].set_index("variant")
    assert set(acc.index) == {"ssn_test-selected", "ssn_val-selected"}
    assert acc["mean"].between(0, 1).all() and (acc["n_test"] == n["test"]).all()
    base = tmp_path / "results/dcase2018_task1a/subspectralnet"
    test_sel = json.loads((base / "ssn_test-selected/seed-0/train.json").read_text())
    val_sel = json.loads((base / "ssn_val-selected/seed-0/train.json").read_text())
    # the original trains on the whole training fold and selects on the test clips
    assert test_sel["n_train"] == n["train"] + n["validation"] and test_sel["n_validation"] == n["test"]
    assert val_sel["n_train"] == n["train"] and val_sel["n_validation"] == n["validation"]
    assert "val_accuracy" in pd.read_csv(base / "ssn_val-selected/seed-0/history.csv")
    confusion = pd.read_csv(tmp_path / "results/confusion.csv")
    assert (confusion.groupby("variant")["count"].sum() == n["test"]).all()
    for png in ("confusion_dcase2018_task1a.png", "per_class_accuracy_dcase2018_task1a.png"):
        assert (tmp_path / "results/figures" / png).stat().st_size > 5000


# ------------------------------------------------------------ the real TAU clips through the `local` source
def _tut2018_layout(src, dst):
    """A TUT 2018 (DCASE 2018 Task 1A) view of a TAU 2019/2020 development folder: fold lists as `.txt` without a
    header, audio and meta.csv linked."""
    dst.mkdir(parents=True)
    (dst / "audio").symlink_to(src / "audio")
    (dst / "meta.csv").symlink_to(src / "meta.csv")
    (dst / "evaluation_setup").mkdir()
    for part in ("train", "evaluate"):
        lines = (src / "evaluation_setup" / f"fold1_{part}.csv").read_text().splitlines()[1:]
        (dst / "evaluation_setup" / f"fold1_{part}.txt").write_text("\n".join(lines) + "\n")


def test_real_tau_clips_through_the_workflow(shared_data, tmp_path):
    """soundata's real 1-s TAU 2019 clip (48 kHz stereo, 16-bit) as dcase2019_task1a, and its TAU 2020 mobile clip
    (44.1 kHz mono float) in a TUT 2018 view as dcase2018_task1a: local source -> manifest -> SubSpectralNet
    features via Snakemake. The truncated metadata lists 6 clips each; the other 5 are absent (allowed)."""
    clips = shared_data / "soundata_clips"
    view = tmp_path / "tut2018"
    _tut2018_layout(clips / "tau2020uas_mobile/TAU-urban-acoustic-scenes-2020-mobile-development", view)
    work = tmp_path / "work"
    work.mkdir()
    config = {
        "datasets": {
            "dcase2019_task1a": {"source": "local", "root": str(clips / "tau2019uas"), "allow_missing_audio": True,
                                 "shards": 1},
            "dcase2018_task1a": {"source": "local", "root": str(view), "allow_missing_audio": True, "shards": 1},
        },
        "features": {"ssn40": dict(PAPER_SPECS["subspectralnet"][1])},
    }
    targets = [f"results/{d}/features/ssn40/shard-0.h5" for d in ("dcase2019_task1a", "dcase2018_task1a")]
    r = snakemake(work, config, "--cores", "2", *targets)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    import h5py

    for dataset, clip in (("dcase2019_task1a", "airport-barcelona-0-0-a"),
                          ("dcase2018_task1a", "airport-barcelona-0-0-a")):
        m = pd.read_csv(work / f"results/{dataset}/manifest.csv")
        assert len(m) == 6 and m["available"].sum() == 1
        assert set(m.loc[m["available"], "clip_id"]) == {clip}
        with h5py.File(work / f"results/{dataset}/features/ssn40/shard-0.h5") as f:
            assert f["x"].shape == (1, 2, 40, 500)
            assert f.attrs["spec_hash"] == paper_spec("subspectralnet").hash()
            x = f["x"][0]
            valid = int(f["length"][0])
            assert valid == 51  # 1 s at a 20 ms hop, centred frames: 1 + 48,000 // 960
            assert np.isfinite(x).all() and x[:, :, :valid].std() > 0.5
            assert np.allclose(x[:, :, valid + 1:], math.log(np.spacing(1)))  # zero padding to 10 s: ln(eps)
            if dataset == "dcase2018_task1a":  # the mono clip serves as left and right
                assert np.array_equal(x[0], x[1])
