"""`soundbench bench train` and the training loop's speed settings: the record is sane, FLOPs match a hand count,
compiled training computes what eager does and checkpoints stay plain (no timed assertions)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from soundbench.bench import train
from soundbench.cli import main
from soundbench.models.samplecnn import SampleCNN
from soundbench.models.smallcnn import SmallCNN
from soundbench.training import loop


def test_bench_train_quick_writes_its_record(tmp_path, capsys):
    assert main(["bench", "train", "--quick", "--out", str(tmp_path)]) == 0
    assert "% peak" in capsys.readouterr().out
    record = json.loads((tmp_path / "train.json").read_text())
    assert record["bench"] == "train" and record["matmul_peak_gflops"] > 0
    timed = [r for r in record["rows"] if r["samples_per_s"] is not None]
    assert {r["system"] for r in timed} == {"smallcnn", "samplecnn"}
    baseline = [r for r in record["rows"] if r["system"] == "baseline"]
    assert len(baseline) == 1 and baseline[0]["mode"].startswith("n/a")
    for row in timed:
        assert row["step_ms"] > 0 and row["gflop_per_step"] > 0 and row["pct_peak"] > 0
        assert np.isclose(row["samples_per_s"], row["batch"] / row["step_ms"] * 1e3)
        assert np.isclose(row["pct_peak"], 100 * row["gflops"] / record["matmul_peaks"][row["device"]]["gflops"])
        # every mode starts from the same weights, batch and dropout masks: the same loss up to rounding
        assert row["loss_diff"] <= 1e-5 * max(1.0, abs(row["first_loss"])), row
    compiled = [r for r in timed if r["mode"] == "compile: true"]
    assert compiled and all(r["compile_s"] >= 0 and r["compile_cache"] in ("cold", "cached") for r in compiled)
    for config in {(r["system"], r["config"]) for r in timed}:
        rows = [r for r in timed if (r["system"], r["config"]) == config]
        assert rows[0]["mode"] == "plain eager" and sum(r["default"] for r in rows) == 1
    goals = record["goals"]
    assert len(goals) == 2 * len(record["matmul_peaks"]) and all(g["target"] == train.PEAK_GOAL for g in goals)


def test_samplecnn_flops_match_a_hand_count():
    """Basic single-level SampleCNN, 243 samples, stem width 8, batch 4: stem (stride 3) -> 81 frames, then four
    blocks of 8, 8, 16, 32 channels on 81, 27, 9, 3 frames, head 32 -> 32 -> 10."""
    b = 4
    stem = 2 * b * 81 * 8 * 1 * 3
    convs = [2 * b * 81 * 8 * 8 * 3, 2 * b * 27 * 8 * 8 * 3, 2 * b * 9 * 16 * 8 * 3, 2 * b * 3 * 32 * 16 * 3]
    head = [2 * b * 32 * 32, 2 * b * 32 * 10]
    forward = stem + sum(convs) + sum(head)
    # backward: the gradients of input and weight, twice the forward each layer; the stem has no input gradient
    expected = forward + 2 * (forward - stem) + stem
    case = train.Case("samplecnn", "test", {"block": "basic", "multi": False, "init_features": 8}, (1, 243),
                      "multilabel", 10)
    assert train.step_flops(case, b) == pytest.approx(expected, rel=0.1)


@pytest.mark.parametrize("case", train.FULL, ids=lambda c: f"{c.system}: {c.config}")
def test_every_full_case_builds_and_steps_on_the_meta_device(case):
    """The full bench's cases (the quick run times only a few): model, batch, targets and loss fit together
    (on the meta device: shapes only, no arithmetic); an SED case once got class ids instead of tags."""
    assert train.step_flops(case, 2) > 0


def test_compile_auto_takes_long_runs_of_models_without_2d_convolutions():
    long_run = 10 * loop.COMPILE_MIN_STEPS
    assert loop.use_compile("auto", SampleCNN(10, 243, init_features=8), long_run)
    assert not loop.use_compile("auto", SampleCNN(10, 243, init_features=8), loop.COMPILE_MIN_STEPS - 1)
    assert not loop.use_compile("auto", SmallCNN(10), long_run)  # channels-last eager serves it best
    assert loop.use_compile(True, SmallCNN(10), 1) and not loop.use_compile(False, SampleCNN(10, 243), long_run)
    with pytest.raises(ValueError, match="compile"):
        loop.use_compile("yes", SmallCNN(10), 1)
    # the demo's small SampleCNN schedule: 1024 segments, batch 23, stages of 6 (patience 2) and 2 epochs
    demo = {"batch_size": 23, "stages": [{"epochs": 6, "patience": 2}, {"epochs": 2}]}
    assert loop.min_steps(demo, 1024) == 4 * 44 < loop.COMPILE_MIN_STEPS


def test_compiled_training_matches_eager_resumes_exactly_and_saves_plain_state_dicts(tmp_path):
    from test_training import CFG, MLP, Toy, model  # tests/ is on sys.path (pytest's default import mode)

    def run(name, compile, kill_at=None):
        return loop.fit(model(), Toy(kill_at=kill_at), Toy(48, seed=1), "multiclass", {**CFG, "compile": compile},
                        3, tmp_path / name, "h", torch.device("cpu"), progress=False)

    eager, eager_hist = run("eager.pt", False)
    compiled, hist = run("compiled.pt", True)
    assert type(compiled) is MLP  # fit hands back the module, not the compiled wrapper
    for h, e in zip(hist, eager_hist):  # the same dropout masks (fallback_random): the same run up to rounding
        assert h["train_loss"] == pytest.approx(e["train_loss"], rel=1e-5)
    with pytest.raises(loop.Interrupted):
        run("killed.pt", True, kill_at=250)  # mid-epoch
    state = torch.load(tmp_path / "killed.pt", weights_only=False)
    assert state["step"] > 0 and not any("_orig_mod" in k for k in state["model"])
    resumed, resumed_hist = run("killed.pt", True)
    assert resumed_hist == hist
    assert list(resumed.state_dict()) == list(eager.state_dict())
    for (k, a), b in zip(compiled.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    saved = torch.load(tmp_path / "compiled.pt", weights_only=False)
    assert not any("_orig_mod" in k for k in [*saved["model"], *saved["best_model"]])


def test_channels_last_predictions_equal_contiguous_ones():
    torch.manual_seed(0)
    model = SmallCNN(3)
    ds = [{"inputs": {"x": torch.randn(1, 40, 20)}, "y": 0, "clip": i // 2} for i in range(6)]
    plain, _ = loop.predict(model, ds, 3, "multiclass", "cpu", speed={"channels_last": False, "compile": False})
    fast, _ = loop.predict(model, ds, 3, "multiclass", "cpu")
    assert next(model.parameters()).is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(fast, plain, atol=1e-6)
