"""SeNoT-Net: the batched kNN against a brute-force reference (same-segment rule, gradients, memory), parameter
counts derived by hand, the TF-exact padding and resize, the stacked segment view, the channel swap, the 2-D -> 3-D
inflation, the system's defaults, paper.yaml, and the pre-training -> fine-tuning edge through Snakemake."""
from __future__ import annotations

import copy
import json
import weakref

import numpy as np
import pytest
import torch
import yaml
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from workflow_runs import ROOT, finished_run, planned, planned_jobs

from soundbench import cli, systems, tasks
from soundbench.features.paper_specs import paper_spec
from soundbench.models import senot as sn
from soundbench.training import loop


# ------------------------------------------------------------------------------------------- the neighbour search
@pytest.mark.parametrize("b,segments,per_segment,c,k", [(2, 4, 6, 5, 4), (3, 8, 3, 2, 4), (1, 2, 5, 7, 3)])
def test_knn_agrees_with_brute_force(b, segments, per_segment, c, k):
    torch.manual_seed(b * 100 + c)
    x = torch.randn(b, segments * per_segment, c, dtype=torch.float64)  # float64: no ties from rounding
    fast = sn.knn_other_segments(x, k, per_segment, chunk_bytes=1)  # one example per chunk: the loop is used
    ref = sn.knn_brute_force(x, k, per_segment)
    assert torch.equal(fast, ref)
    assert torch.equal(sn.knn_other_segments(x, k, per_segment), ref)  # the whole batch in one chunk


def test_knn_never_picks_its_own_segment_even_when_it_is_closest():
    torch.manual_seed(0)
    segments, per = 8, 10
    x = torch.randn(4, segments * per, 16)
    # every point of a segment nearly equal to each other, the segments far apart: the nearest points of any
    # point are its own segment's, which the rule excludes
    x = x * 0.01 + torch.arange(segments).repeat_interleave(per)[None, :, None] * 10.0
    idx = sn.knn_other_segments(x, 4, per)
    own = torch.arange(segments * per) // per
    assert (idx // per != own[None, :, None]).all()
    # and the neighbours come from the adjacent segment (the nearest other cluster)
    assert ((idx // per - own[None, :, None]).abs() == 1).all()


def test_knn_errors():
    with pytest.raises(ValueError, match="not whole segments"):
        sn.knn_other_segments(torch.zeros(1, 10, 2), 2, 3)
    with pytest.raises(ValueError, match="only 3 points in other segments"):
        sn.knn_other_segments(torch.zeros(1, 6, 2), 4, 3)


def test_gradients_flow_through_the_features_not_the_indices():
    torch.manual_seed(0)
    module = sn.SeNoTModule(16, k=4, shrink=2).train()
    torch.nn.init.ones_(module.bn_out.weight)  # gamma 0 at initialisation would zero every upstream gradient
    x = torch.randn(2 * 4, 16, 6, 4, requires_grad=True)  # 2 examples x 4 segments
    out = module(x, segments=4)
    assert out.shape == x.shape
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert module.rel1.weight.grad[:, 3 + 16:].abs().sum() > 0  # the x_j part: through the gathered neighbours
    idx = sn.knn_other_segments(x.reshape(2, 4, 16, 24).transpose(2, 3).reshape(2, 96, 16), 4, 24)
    assert not idx.requires_grad and idx.dtype == torch.long


def test_module_starts_as_identity_and_matches_concatenation():
    """gamma = 0: the block's output is unchanged at initialisation; the split first layer equals the concatenated
    (dt, dh, dw, x_i, x_j) input of the original."""
    torch.manual_seed(1)
    module = sn.SeNoTModule(8, k=3).eval()
    for bn in (module.bn1, module.bn2, module.bn_out):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2 * 3, 8, 4, 5)
    assert module(x, 3).abs().max() == 0
    torch.nn.init.normal_(module.bn_out.weight)
    got = module(x, 3)
    # the reference: concatenate, then the layers as 1x1 convolutions over (points, neighbours)
    b, s, c, h, w = 2, 3, 8, 4, 5
    pts = x.reshape(b, s, c, h * w).transpose(2, 3).reshape(b, s * h * w, c)
    idx = sn.knn_brute_force(pts, 3, h * w)
    grid = torch.stack(torch.meshgrid(torch.arange(s) / s, torch.arange(h) / h, torch.arange(w) / w,
                                      indexing="ij"), -1).reshape(-1, 3)
    feats = torch.cat([grid[idx] - grid[None, :, None], pts[:, :, None].expand(-1, -1, 3, -1),
                       torch.stack([pts[e][idx[e]] for e in range(b)])], dim=-1)
    hid = torch.relu(module.bn1(module.rel1(feats).reshape(-1, c // 4))).view(b, -1, 3, c // 4)
    hid = torch.relu(module.bn2(module.rel2(hid).reshape(-1, c // 2))).view(b, -1, 3, c // 2).amax(2)
    want = module.bn_out(module.proj(hid.reshape(-1, c // 2))).view(b, s, h * w, c).transpose(2, 3)
    assert torch.allclose(got, want.reshape(b * s, c, h, w), atol=1e-5)


class PeakMemory(TorchDispatchMode):
    """Peak bytes of storages alive at once among those created inside the mode (a storage counts once, however
    many tensors view it, until the last of them is freed): the memory a function allocates, on any device."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.refs: dict[int, int] = {}  # storage pointer -> tensors created here that use it

    def _free(self, ptr, n):
        self.refs[ptr] -= 1
        if not self.refs[ptr]:
            del self.refs[ptr]
            self.live -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)}
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                ptr, n = t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()
                if ptr in inputs and ptr not in self.refs:
                    continue  # a view or an in-place result of memory from outside
                if ptr not in self.refs:
                    self.live += n
                self.refs[ptr] = self.refs.get(ptr, 0) + 1
                weakref.finalize(t, self._free, ptr, n)
        self.peak = max(self.peak, self.live)
        return out


def test_search_memory_of_a_batch_of_16_at_group_1_stays_under_the_bound():
    """The paper's group 1 after the shrink: 8 segments x 16 x 10 points of 128 channels, batch 16. One distance
    matrix for the whole batch would be 16 x 1280^2 x 4 B = 105 MB; the chunked search stays under
    KNN_CHUNK_BYTES (64 MiB) plus 8 MiB for the norms, the mask and the indices."""
    torch.manual_seed(0)
    x = torch.randn(16, 8 * 16 * 10, 128)
    with PeakMemory() as mem:
        idx = sn.knn_other_segments(x, 4, 16 * 10)
    assert idx.shape == (16, 1280, 4)
    bound = sn.KNN_CHUNK_BYTES + (8 << 20)
    assert 16 * 1280 ** 2 * 4 > bound  # the bound is below what the unchunked search needs ...
    assert 0.5 * sn.KNN_CHUNK_BYTES < mem.peak < bound, mem.peak  # ... and the tracker sees the chunk


@pytest.mark.slow  # a cold compile: ~10 s
def test_knn_compiles():
    torch.manual_seed(0)
    x = torch.randn(3, 4 * 6, 8)
    compiled = torch.compile(lambda t: sn.knn_other_segments(t, 4, 6, chunk_bytes=2 * 24 * 24 * 4), dynamic=False)
    assert torch.equal(compiled(x), sn.knn_brute_force(x, 4, 6))


# ------------------------------------------------------------------------------------------------ the trunk
def test_tf_same_padding_and_legacy_resize():
    assert sn._same_pad(128, 3, 2) == (0, 1) and sn._same_pad(64, 3, 1) == (1, 1) and sn._same_pad(32, 1, 2) == (0, 0)
    x = torch.arange(4 * 6, dtype=torch.float32).view(1, 1, 4, 6)
    down = sn.resize_bilinear_legacy(x, (2, 3))
    assert torch.equal(down, x[:, :, ::2, ::2])  # TF1: output i samples input 2i
    up = sn.resize_bilinear_legacy(down, (4, 6))
    # midway between samples, the last row/column repeats (clamped)
    assert up[0, 0, 0].tolist() == [0, 1, 2, 3, 4, 4] and up[0, 0, :, 0].tolist() == [0, 6, 12, 12]
    conv = sn.SegmentConv(1, 1, 3, 2, inflated=False)
    torch.nn.init.zeros_(conv.weight)
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = 1.0  # picks the window's top-left input
    y = conv(torch.arange(16.0).view(1, 1, 4, 4))
    assert y[0, 0].tolist() == [[0, 2], [8, 10]]  # windows start at 0 (no padding before), as TF SAME
    w = torch.empty(256, 64, 3, 3)
    sn.msra_(w, 64 * 9)  # TF's variance scaling: std sqrt(1.3 * 2 / fan_in) truncated at 2 std ~ sqrt(2 / fan_in)
    limit = 2 * (2.6 / (64 * 9)) ** 0.5
    assert w.abs().max() <= limit and abs(float(w.std()) / (2 / (64 * 9)) ** 0.5 - 1) < 0.03


def test_segments_never_mix_without_modules():
    torch.manual_seed(0)
    model = sn.build(10, {"x": (3, 4, 16, 8)}, widths=[4, 8, 8, 8], modules=False).eval()
    feats = {}  # the last block's output, before the mean over segments
    model.blocks[-1].register_forward_hook(lambda m, i, o: feats.__setitem__("h", o))
    x = torch.randn(1, 3, 4, 16, 8)
    y = x.clone()
    y[:, :, 2] += 3.0
    with torch.no_grad():
        model(x)
        a = feats["h"].clone()
        model(y)
        b = feats["h"]
    same = [torch.equal(a[s], b[s]) for s in range(4)]
    assert same == [True, True, False, True]


# Parameter counts by hand (seed-specs 1.4; every convolution has a bias AND a BatchNorm of gamma + beta, as
# tf_util's; 10 classes). Conv k x k from a to b channels: 9ab + b (3x3) or ab + b (1x1); BN: 2b.
# ResNet-18 (widths 64, 128, 256, 512), input 3 channels:
#   stem   conv 3->64: 1,728 + 64 = 1,792; BN 128                                                  1,920
#   group0 2 blocks of [conv 64->64 (36,928) + BN 128] x 2 = 74,112 each                          148,224
#   group1 block0: conv 64->128 73,856 + BN 256; conv 128->128 147,584 + BN 256; shortcut 1x1
#          64->128 8,320 + BN 256 = 230,528; block1: 2 x (147,584 + 256) = 295,680             526,208
#   group2 block0: 295,168 + 512 + 590,080 + 512 + 33,024 + 512 = 919,808; block1: 2 x 590,592   2,100,992
#   group3 block0: 1,180,160 + 1,024 + 2,359,808 + 1,024 + 131,584 + 1,024 = 3,674,624;
#          block1: 2 x 2,360,832 = 4,721,664                                                    8,396,288
#   fc 512 x 10 + 10                                                                                5,130
#   2-D trunk (senot2d): 1,920 + 148,224 + 526,208 + 2,100,992 + 8,396,288 + 5,130 =           11,178,762
# SeNoT module on C channels: relation 1 (2C + 3) x C/4 + C/4, BN C/2; relation 2 C/4 x C/2 + C/2, BN C;
#   projection C/2 x C + C, BN 2C
#   C = 128: 8,320 + 64 + 2,112 + 128 + 8,320 + 256 = 19,200;  C = 256: 33,024 + 128 + 8,320 + 256 + 33,024
#   + 512 = 75,264; two of each: 188,928          ResNet-18 SeNoT-Net: 11,178,762 + 188,928 = 11,367,690
# PreAct-18 changes only BatchNorms (2w per BN of width w): block 0 drops conv2's and the shortcut's BN; block 1
#   drops conv2's BN and adds a pre-activation BN on its input and "bnlast" after the sum (both of width w):
#   group0 (no shortcut): -128 | -128 +128 +128 = 0      group1: -256 -256 | -256 +256 +256 = -256
#   group2: -512 (likewise)                             group3: -1,024;     in all -1,792
#   2-D PreAct-18: 11,178,762 - 1,792 = 11,176,970;  PreAct-18 SeNoT-Net: 11,176,970 + 188,928 = 11,365,898
HAND = [
    ("senot", {}, 11_367_690),
    ("senot", {"modules": False}, 11_178_762),
    ("senot2d", {}, 11_178_762),
    ("senot", {"trunk": "preact18"}, 11_365_898),
    ("senot2d", {"trunk": "preact18"}, 11_176_970),
]


@pytest.mark.parametrize("system,sets,expected", HAND, ids=[f"{h[0]}-{h[2]}" for h in HAND])
def test_parameter_counts_derived_by_hand(system, sets, expected):
    s = systems.get(system)
    model = s.build(10, tasks.get("multiclass"), s.input_shapes(s.params), **{**s.params, **sets})
    assert sn.count_parameters(model) == expected


def test_describe_model_command(capsys):
    """The count does not depend on the input size (global pooling): a small input keeps the forward cheap."""
    cli.main(["describe-model", "senot", "--set", "trunk=preact18", "--set", "input_shape=[3, 2, 32, 16]"])
    out = json.loads(capsys.readouterr().out)
    assert out["n_params"] == 11_365_898 and out["outputs"] == {"logits": [10]}
    assert "188,928" in out["note"]


def test_module_placement_and_shrink():
    model = sn.build(10, {"x": (3, 8, 128, 80)})
    placed = [(i // 2, i % 2, b.senot.channels, b.senot.shrink) for i, b in enumerate(model.blocks)
              if b.senot is not None]
    assert placed == [(1, 0, 128, 2), (1, 1, 128, 2), (2, 0, 256, None), (2, 1, 256, None)]
    assert all(m.k == 4 for m in model.senot_modules())
    assert all(not m.bn_out.weight.detach().any() for m in model.senot_modules())
    assert all(bn.eps == 1e-3 for bn in model.modules() if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm))


# ----------------------------------------------------------------------------------- input, hooks and defaults
def test_stacked_segment_view_of_the_paper_spec(tmp_path):
    """469 frames -> 8 segments of 80 at hop 55 (starts 0..385), stacked into one (3, 8, 128, 80) example."""
    import h5py

    from soundbench.features.reader import ShardDataset

    spec = paper_spec("senot")
    view = systems.get("senot").view(systems.get("senot").params, spec)
    assert (view.length, view.hop, view.stack) == (80, 55, 1)
    assert view.starts(469).tolist() == [0, 55, 110, 165, 220, 275, 330, 385]
    flat = systems.get("senot2d").view(systems.get("senot2d").params, spec)
    assert flat.stack is None and flat.hop == 55
    path = tmp_path / "shard-0.h5"
    x = np.random.default_rng(0).standard_normal((2, 3, 128, 469)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["x"] = x
        f["clip_id"] = np.array(["a", "b"], dtype=object).astype("S")
        f["length"] = np.array([469, 469])
        f.attrs["spec_hash"] = spec.hash()
    ds = ShardDataset([path], ["a", "b"], spec_hash=spec.hash(), view=view)
    assert len(ds) == 2 and ds.examples_per_clip().tolist() == [1, 1]
    item = ds[1]
    assert item["x"].shape == (3, 8, 128, 80) and item["clip"] == 1
    assert torch.equal(item["x"][:, 3], torch.from_numpy(x[1, :, :, 165:245]))
    per_segment = ShardDataset([path], ["a", "b"], spec_hash=spec.hash(), view=flat)
    assert len(per_segment) == 16 and torch.equal(per_segment[8 + 3]["x"], item["x"][:, 3])
    with pytest.raises(ValueError, match="stacked segments need within='clip'"):
        type(view)(80, hop=55, stack=1)
    with pytest.raises(ValueError, match="params.segment_frames: 80 but the feature has 40 frames"):
        sn.view({"segment_frames": 80, "segments": 8}, paper_spec("senot", n_frames=40), True)


def test_channel_swap_is_exact_for_the_difference_channel():
    """Swapping L and R of the audio gives the stored features with channels 0 and 1 swapped and channel 2 as it
    is (the power of R - L equals that of L - R): the hook's behaviour is the exact one."""
    from soundbench.features.extract import clip_feature

    spec = paper_spec("senot", n_frames=20)
    rng = np.random.default_rng(0)
    stereo = rng.standard_normal((2, 48000 * 10 // 24)).astype(np.float32)
    a, _ = clip_feature(stereo, 48000, spec)
    b, _ = clip_feature(stereo[::-1].copy(), 48000, spec)
    assert np.allclose(b, a[[1, 0, 2]], atol=1e-4)
    x = torch.from_numpy(np.stack([a, a + 1]))
    batch = {"inputs": {"x": x}, "y": torch.tensor([0, 1])}
    draws = [sn.channel_swap(batch, np.random.default_rng([s]), {"channel_swap": True}) for s in range(40)]
    swapped = [torch.equal(d["inputs"]["x"], x[:, [1, 0, 2]]) for d in draws]
    kept = [torch.equal(d["inputs"]["x"], x) for d in draws]
    assert all(s != k for s, k in zip(swapped, kept)) and 10 < sum(swapped) < 30  # the whole batch, p = 0.5
    assert all(torch.equal(sn.channel_swap(batch, np.random.default_rng([s]), {"channel_swap": False})["inputs"]["x"],
                           x) for s in range(10))


def test_inflation_loads_the_2d_weights_and_leaves_the_modules_fresh():
    from soundbench import runner

    torch.manual_seed(0)
    small = {"widths": [4, 8, 8, 8]}
    two = sn.build(10, {"x": (3, 16, 8)}, dims=2, **small)
    three = sn.build(10, {"x": (3, 4, 16, 8)}, **small)
    record = {"system": "senot2d", "run_hash": "abc", "state_dict": two.state_dict()}
    info = runner.init_weights(three, systems.get("senot"), "pre/model.pt", record)
    fresh = [k for k in three.state_dict() if ".senot." in k]
    assert info["loaded"] == len(two.state_dict()) and info["fresh"] == len(fresh) > 0 and info["unused"] == 0
    assert torch.equal(three.stem.weight[:, :, 0], two.stem.weight)
    assert three.stem.weight.shape == (4, 3, 1, 3, 3)
    # without modules the inflated 3-D network is the 2-D one on every segment: the same logits
    plain = sn.build(10, {"x": (3, 4, 16, 8)}, modules=False, **small)
    runner.init_weights(plain, systems.get("senot"), "pre/model.pt", record)
    x = torch.randn(2, 3, 4, 16, 8)
    two.eval(), plain.eval()
    with torch.no_grad():
        per_segment = two.fc.weight @ torch.stack(
            [_features(two, x[:, :, s]) for s in range(4)]).mean(0).T + two.fc.bias[:, None]
        assert torch.allclose(plain(x), per_segment.T, atol=1e-4)


def _features(model, x):
    feats = {}
    handle = model.drop.register_forward_hook(lambda m, i, o: feats.__setitem__("h", i[0]))
    model(x)
    handle.remove()
    return feats["h"]


def test_system_defaults_are_the_originals():
    s = systems.get("senot")
    assert s.params["trunk"] == "resnet18" and s.params["k"] == 4 and s.params["shrink"] == [2, None]
    assert (s.params["segments"], s.params["segment_frames"], s.params["segment_hop"]) == (8, 80, None)
    t = s.train
    assert (t["optimizer"], t["momentum"], t["nesterov"], t["lr"], t["batch_size"], t["drop_last"]) == \
        ("sgd", 0.9, True, 0.002, 16, True)
    assert t.get("weight_decay", 0.0) == 0.0 and t["normalize"] == "paper" and t["select_on"] == "test"
    lrs = [st["lr"] for st in t["stages"] for _ in range(st["epochs"])]
    assert len(lrs) == 251  # max_epoch
    want = [max(0.002 * 0.1 ** (e // 40), 1e-5) for e in range(251)]
    assert np.allclose(lrs, want)
    assert all(not st.get("reset_optimizer", True) for st in t["stages"][1:])
    # BN decay min(0.99, 1 - 0.5 * 0.5^floor(step / (40 epochs))): 0.5, 0.75, 0.875, ...
    model = torch.nn.BatchNorm2d(2)
    decays = []
    for step in (0, 399, 400, 800, 1200, 100_000):
        loop._set_bn_momentum(model, t["bn_momentum"], step, steps_per_epoch=10)
        decays.append(round(1 - model.momentum, 6))
    assert decays == [0.5, 0.5, 0.75, 0.875, 0.9375, 0.99]
    assert s.paper_normalization("dcase2019_task1a")["mean"][0] == -6.0472383
    assert s.paper_normalization("dcase2018_task1a")["std"][2] == 0.12977712
    with pytest.raises(ValueError, match="use per_channel"):
        s.paper_normalization("mtt")
    assert s.input_shapes(s.params) == {"x": (3, 8, 128, 80)}


def test_top5_accuracy_by_hand():
    y = np.array([0, 1, 2, 3, 4, 5, 6])
    p = np.tile(np.linspace(0.7, 0.01, 7), (7, 1))  # every clip ranks the classes 0, 1, ..., 6
    p = p / p.sum(1, keepdims=True)
    pred = tasks.Predictions("test", [str(i) for i in range(7)], {"y": y}, p)
    m, _ = tasks.get("multiclass").metrics(pred, tasks.EvalContext([str(c) for c in range(7)], np.full(7, 0.5)))
    assert m["accuracy"] == pytest.approx(1 / 7) and m["top5_accuracy"] == pytest.approx(5 / 7)


# -------------------------------------------------------------------------------------------------- workflow
def _scene(system, **keys):
    return {"system": system, "dataset": "dcase2019_task1a", "feature": "lrd",
            "params": {"widths": [4, 8, 8, 8], "segment_frames": 16}, **keys}


PRE_FT = {
    "datasets": {"dcase2019_task1a": {"source": "demo", "clip_seconds": 3, "demo": {"clips_per_scene": 6},
                                      "parse": {"validation": "holdout", "validation_fraction": 0.2}}},
    "features": {"lrd": {"kind": "logmel", "sample_rate": 48000, "channels": "lrd", "n_fft": 2048,
                         "hop_length": 1024, "n_mels": 16}},
    "experiments": {
        "pre2d": _scene("senot2d", train={"stages": [{"epochs": 1}], "normalize": "per_channel", "batch_size": 8}),
        "senot_ft": _scene("senot", init_from="pre2d",
                           train={"stages": [{"epochs": 1}], "normalize": "per_channel", "batch_size": 8}),
    },
}


@pytest.fixture(scope="module")
def pre_ft(tmp_path_factory):
    return finished_run(tmp_path_factory.mktemp("senot_pre_ft"), PRE_FT)


@pytest.mark.slow
def test_pretraining_then_fine_tuning_end_to_end(pre_ft):
    run = pre_ft / "results/dcase2019_task1a/senot/senot_ft/seed-0"
    info = json.loads((run / "train.json").read_text())
    assert info["init_from"]["path"].endswith("senot2d/pre2d/seed-0/model.pt")
    assert info["init_from"]["loaded"] > 0 and info["init_from"]["fresh"] > 0  # the modules start fresh
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    assert 0 <= metrics["accuracy"] <= metrics["top5_accuracy"] <= 1
    pre = json.loads((pre_ft / "results/dcase2019_task1a/senot2d/pre2d/seed-0/train.json").read_text())
    assert pre["n_examples_train"] == 8 * pre["n_train"]  # one example per segment
    assert info["n_examples_train"] == info["n_train"]  # one stacked example per clip


@pytest.mark.slow
def test_a_change_to_the_pretraining_reruns_both(pre_ft):
    cfg = copy.deepcopy(PRE_FT)
    cfg["experiments"]["pre2d"]["params"]["dropout"] = 0.3
    assert planned_jobs(pre_ft, cfg) == {"train": 2, "evaluate": 2, "aggregate": 1, "all": 1}
    cfg = copy.deepcopy(PRE_FT)
    cfg["experiments"]["senot_ft"]["params"]["k"] = 3
    assert planned_jobs(pre_ft, cfg) == {"train": 1, "evaluate": 1, "aggregate": 1, "all": 1}


def test_paper_grid(tmp_path):
    paper = yaml.safe_load((ROOT / "workflow/experiments/paper.yaml").read_text())
    exps = {k: v for k, v in paper["experiments"].items() if v["system"] in ("senot", "senot2d")}
    jobs = planned(tmp_path, {**paper, "experiments": exps})
    trained = {(j["wildcards"]["variant"], j["wildcards"]["seed"]) for j in jobs if j["rule"] == "train"}
    for year in ("2019", "2018"):
        for trunk in ("resnet18", "preact18"):
            for modules in ("senot", "no-modules"):
                for init in ("pretrained", "scratch"):
                    name = f"dcase{year}_task1a_{trunk}_{modules}_{init}"
                    assert {(name, str(s)) for s in (0, 1, 2)} <= trained, name
                    assert not exps[name].get("paper")  # no published numbers (seed-specs 1.1)
                    assert exps[name]["params"].get("trunk") == trunk
                    assert (exps[name].get("init_from") is not None) == (init == "pretrained")
    for e in exps.values():
        assert paper["features"][e["feature"]] == paper_spec_config()


def paper_spec_config():
    from soundbench.features.paper_specs import PAPER_SPECS

    return dict(PAPER_SPECS["senot"][1])


def test_bench_rows_give_the_modules_share():
    """`soundbench bench train`'s SeNoT rows: the modules' share of the step from the pair of configs with and
    without them (same mode and device), and FLOPs counted on the meta device through the modules."""
    from soundbench.bench import train as bench

    rows = [{"system": "senot", "config": "c", "device": "cpu", "mode": m, "step_ms": ms}
            for m, ms in (("plain eager", 400.0), ("compile: false", 200.0))]
    rows += [{"system": "senot", "config": "c" + bench.NO_MODULES, "device": "cpu", "mode": m, "step_ms": ms}
             for m, ms in (("plain eager", 300.0), ("compile: false", 150.0))]
    rows.append({"system": "smallcnn", "config": "c", "device": "cpu", "mode": "plain eager", "step_ms": 1.0})
    bench.module_shares(rows)
    assert [r.get("module_share") for r in rows] == [0.25, 0.25, None, None, None]
    assert [c.config for c in bench.FULL if c.system == "senot"] == [bench.SENOT_CONFIG,
                                                                    bench.SENOT_CONFIG + bench.NO_MODULES]
    small = {"widths": [4, 8, 8, 8], "segment_frames": 8}
    flops = [bench.step_flops(bench.Case("senot", "tiny", {**small, "modules": m}, (3, 4, 16, 8), "multiclass", 10,
                                         compile=False), 4) for m in (True, False)]
    assert flops[0] > flops[1] > 0  # the modules' matmuls are counted
