"""The training loop: staged schedules, early stopping, and exact resume after SIGTERM mid-epoch."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from torch import nn

from soundbench.training import loop


class Toy(torch.utils.data.Dataset):
    """Two Gaussian classes in 8 dimensions; optionally sends SIGTERM to this process at the n-th read."""

    def __init__(self, n=96, seed=0, kill_at=None):
        g = np.random.default_rng(seed)
        self.y = g.integers(0, 2, n)
        self.x = (g.normal(size=(n, 8)) + self.y[:, None] * 0.8).astype(np.float32)
        self.kill_at, self.reads = kill_at, 0

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.reads += 1
        if self.kill_at is not None and self.reads == self.kill_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return {"inputs": {"x": torch.from_numpy(self.x[i])}, "y": torch.tensor(self.y[i]), "clip": i}


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))

    def forward(self, x):
        return self.net(x)


def model(seed=0):
    torch.manual_seed(seed)
    return MLP()


CFG = {"optimizer": "sgd", "nesterov": True, "momentum": 0.9, "batch_size": 8, "decay": 1e-3, "reload_best": True,
       "stages": [{"lr": 0.05, "epochs": 4, "patience": 2}, {"lr": 0.01, "epochs": 3, "patience": 2}]}


def run(tmp_path, kill_at=None, name="ck.pt"):
    ck = tmp_path / name
    return loop.fit(model(), Toy(kill_at=kill_at), Toy(48, seed=1), "multiclass", CFG, 3, ck, "h",
                    torch.device("cpu"), progress=False)


def test_resume_after_sigterm_equals_uninterrupted(tmp_path):
    ref_model, ref_hist = run(tmp_path, name="ref.pt")
    with pytest.raises(loop.Interrupted):
        run(tmp_path, kill_at=250)  # read 250 = epoch 2 of stage 0, mid-epoch
    state = torch.load(tmp_path / "ck.pt", weights_only=False)
    assert (state["stage"], state["epoch"]) == (0, 2) and state["step"] > 0  # stopped inside epoch 2
    resumed, hist = run(tmp_path)
    assert hist == ref_hist
    for (k, a), b in zip(ref_model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_stages_and_early_stopping(tmp_path):
    _, hist = run(tmp_path)
    stages = [h["stage"] for h in hist]
    assert stages[0] == 0 and stages[-1] == 1
    assert all(h["val_loss"] > 0 for h in hist)
    assert {h["lr"] for h in hist} == {0.05, 0.01}


def test_stale_checkpoint_of_another_config_is_ignored(tmp_path):
    run(tmp_path, name="ck.pt")
    ck = tmp_path / "ck.pt"
    m, hist = loop.fit(model(), Toy(), None, "multiclass", {**CFG, "stages": [{"epochs": 1}]}, 3, ck, "other",
                       torch.device("cpu"), progress=False)
    assert len(hist) == 1  # started afresh instead of resuming the finished run of hash "h"


def test_learns(tmp_path):
    m, _ = run(tmp_path)
    p, frames = loop.predict(m, Toy(48, seed=1), 48, "multiclass", torch.device("cpu"))
    assert frames is None
    acc = (p.argmax(1) == Toy(48, seed=1).y).mean()
    assert np.allclose(p.sum(1), 1) and acc > 0.7


def test_a_final_batch_of_one_joins_the_previous_batch():
    batches = loop.epoch_batches(47, 23, 0, 0, 0)
    assert [len(b) for b in batches] == [23, 24]
    assert sorted(np.concatenate(batches)) == list(range(47))


def test_drop_last_drops_the_incomplete_batch():
    batches = loop.epoch_batches(47, 16, 0, 0, 0, drop_last=True)
    assert [len(b) for b in batches] == [16, 16]
