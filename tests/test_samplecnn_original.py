"""SampleCNN's input pipeline and schedule behave as the original code (tae-jun/sampleaudio) on hand-built cases:
short clips stretched and cut into the full number of segments, the best model restarting every stage, and the
10,000-segment shuffle buffer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_training import MLP, Toy  # tests/ is on sys.path (pytest's default import mode)

from soundbench import systems
from soundbench.features.extract import clip_feature
from soundbench.features.reader import Segments, ShardDataset
from soundbench.features.shards import ShardWriter
from soundbench.features.spec import FeatureSpec
from soundbench.training import loop


def test_a_short_clip_gives_the_originals_full_count_of_stretched_segments(tmp_path):
    # 10-s clips at 100 Hz, segments of 1 s: a 9.5-s clip is stretched to 10 s and cut into 10 segments
    spec = FeatureSpec.from_config("w", {"kind": "waveform", "sample_rate": 100, "pad": "repeat"}).resolved(10.0)
    audio = np.arange(950, dtype=np.float32)[None] / 1000
    x, valid = clip_feature(audio, 100, spec)
    assert x.shape == (1, 1000) and valid == 950
    original = np.repeat(audio[0], 1000 // 950 + 1)[:1000]  # lib/data/audio.py load_audio
    np.testing.assert_array_equal(x[0], original)
    attrs = {"spec_hash": spec.hash(), "source_hash": "s" * 16}
    with ShardWriter(tmp_path / "s.h5", attrs, 1) as w:
        w.add("short", {"x": x}, valid)
    view = systems.get("samplecnn").view({"segment_samples": 100}, spec)
    ds = ShardDataset([tmp_path / "s.h5"], ["short"], spec_hash=spec.hash(), view=view)
    assert view.within == "clip" and len(ds) == 10
    np.testing.assert_array_equal(ds[9]["x"].numpy()[0], original[900:1000])
    # the named departure: segments only inside the real 9.5 s
    valid_only = ShardDataset([tmp_path / "s.h5"], ["short"], spec_hash=spec.hash(), view=Segments(100, within="valid"))
    assert len(valid_only) == 9


SCRIPT = {0: 0.50, 1: 0.40, 2: 0.45, 3: 0.60, 4: 0.55, 5: 0.58}  # validation loss per global epoch


def scripted_loss(outputs, batch, ctx):
    """Cross-entropy in training; in validation (no gradients) the scripted loss of the epoch."""
    if torch.is_grad_enabled():
        return F.cross_entropy(outputs["logits"], batch["y"])
    return outputs["logits"].sum() * 0 + SCRIPT[ctx.epoch]


@pytest.mark.parametrize("scope, selected_epoch, stage_lengths", [
    # the original: a new ModelCheckpoint per stage, so stage 1's first epoch (0.60) is its best although stage 0
    # reached 0.40, and the final model is stage 1's best (0.55, global epoch 4); its EarlyStopping restarts too
    ("stage", 4, [3, 3]),
    # one best over the run: epoch 1 (0.40) stays the best, and stage 1 stops after its patience of 2 epochs
    ("run", 1, [3, 2]),
])
def test_selection_restarts_every_stage_as_the_original(tmp_path, scope, selected_epoch, stage_lengths):
    states = {}

    class Recording(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = MLP()

        def forward(self, x):
            return {"logits": self.net(x)}

    torch.manual_seed(0)
    model = Recording()
    cfg = {"optimizer": "sgd", "batch_size": 8, "reload_best": True, "select_scope": scope,
           "stages": [{"lr": 0.05, "epochs": 3, "patience": 2}, {"lr": 0.01, "epochs": 3, "patience": 2}]}

    def loss(outputs, batch, ctx):
        if not torch.is_grad_enabled():
            states[ctx.epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        return scripted_loss(outputs, batch, ctx)

    trained, hist = loop.fit(model, Toy(), Toy(48, seed=1), "multiclass", cfg, 3, tmp_path / "ck.pt", "h",
                             torch.device("cpu"), progress=False, hooks=loop.Hooks(loss=loss))
    assert [sum(h["stage"] == s for h in hist) for s in (0, 1)] == stage_lengths
    assert [h["val_loss"] for h in hist] == pytest.approx([SCRIPT[e] for e in range(len(hist))])
    for k, v in trained.state_dict().items():
        assert torch.equal(v, states[selected_epoch][k]), k


def test_shuffle_buffer_keeps_neighbours_together_and_is_a_function_of_the_seed():
    n, clip = 2000, 10  # 200 clips of 10 consecutive segments
    rng = np.random.default_rng(0)
    assert list(loop.buffer_order(n, 1, rng)) == list(range(n))  # a buffer of one changes nothing
    order = loop.buffer_order(n, 50, np.random.default_rng(1))
    assert sorted(order) == list(range(n))
    # an example leaves the buffer at the earliest when it enters: position p holds an example < p + 50
    assert (order < np.arange(n) + 50).all()
    per_clip = np.full(n // clip, clip)
    stream = loop.clip_stream(per_clip, 3)
    assert sorted(stream) == list(range(n)) and (np.diff(stream.reshape(-1, clip), axis=1) == 1).all()
    assert not np.array_equal(stream, np.arange(n))  # the clips come in an order drawn from the seed
    buffered = loop.epoch_batches(n, 23, 3, 0, 0, shuffle="buffer", shuffle_buffer=50, per_clip=per_clip)
    permuted = loop.epoch_batches(n, 23, 3, 0, 0)

    def same_clip_pairs(batches):
        return sum(len(b) - len(set(b // clip)) for b in batches)

    assert same_clip_pairs(buffered) > 5 * max(1, same_clip_pairs(permuted))
    again = loop.epoch_batches(n, 23, 3, 0, 0, shuffle="buffer", shuffle_buffer=50, per_clip=per_clip)
    assert all(np.array_equal(a, b) for a, b in zip(buffered, again))
    other = loop.epoch_batches(n, 23, 3, 0, 1, shuffle="buffer", shuffle_buffer=50, per_clip=per_clip)
    assert not np.array_equal(buffered[0], other[0])  # a new order every epoch


def test_shuffle_buffer_training_resumes_exactly(tmp_path):
    cfg = {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "batch_size": 8, "shuffle": "buffer",
           "shuffle_buffer": 20, "stages": [{"lr": 0.05, "epochs": 3}]}

    def run(name, kill_at=None):
        torch.manual_seed(0)
        return loop.fit(MLP(), Toy(kill_at=kill_at), Toy(48, seed=1), "multiclass", cfg, 3, tmp_path / name, "h",
                        torch.device("cpu"), progress=False)

    ref, ref_hist = run("ref.pt")
    with pytest.raises(loop.Interrupted):
        run("ck.pt", kill_at=96 + 50)  # epoch 1, mid-epoch
    resumed, hist = run("ck.pt")
    assert hist == ref_hist
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_samplecnn_defaults_are_the_originals():
    train = systems.get("samplecnn").train
    assert (train["select_scope"], train["shuffle"], train["shuffle_buffer"]) == ("stage", "buffer", 10000)
    assert systems.get("samplecnn").params["segment_within"] == "clip"


def test_mtt_top50_rule_gives_the_originals_pinned_list(tmp_path):
    """Tags ranked by count, ascending, the 50 most frequent kept: on annotations whose counts rank the tags as the
    real file does, the derived classes are the original's list in its order."""
    from soundbench.datasets import get
    from soundbench.datasets.mtt import ORIGINAL_TOP50

    rare = [f"rare{i}" for i in range(5)]
    tags = rare + list(ORIGINAL_TOP50)  # counts 1, 2, ... in this order
    n = len(tags) + 1
    rows = [["clip_id", *tags, "mp3_path"]]
    for c in range(n):  # clip c carries every tag whose rank is > c: tag k has k + 1 positives
        rows.append([str(c), *("1" if k >= c else "0" for k in range(len(tags))), f"{c % 16:x}/c{c}.mp3"])
    (tmp_path / "annotations_final.csv").write_text("\n".join("\t".join(r) for r in rows) + "\n")
    m = get("mtt").parse(tmp_path, allow_missing_audio=True)
    assert m.classes == list(ORIGINAL_TOP50)


def test_original_top50_is_the_real_top50(shared_data):
    """musicnn's metadata lists MTT's real top-50 tags by descending count: the original's list is its reverse."""
    import json

    from soundbench.datasets.mtt import ORIGINAL_TOP50

    index = json.loads((shared_data / "mtt_meta" / "classes_MagnaTT.json").read_text())
    descending = [tag for tag, _ in sorted(index.items(), key=lambda kv: kv[1]) if tag != "clip_id"]
    assert descending[::-1] == list(ORIGINAL_TOP50)
