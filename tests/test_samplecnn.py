"""SampleCNN port: parameter counts of seed-specs 2.4, shapes, Keras padding / BN, the original init, training."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from soundbench.models.samplecnn import (
    DATASET_DEFAULTS,
    STANDARDISATION,
    BasicBlock,
    ResidualBlock,
    SampleCNN,
    SqueezeExcitation,
    _Conv1d,
    block_widths,
    count_parameters,
    describe,
    num_blocks_for,
    taejun_limit,
    time_lengths,
)

# seed-specs 2.4: trainable parameter counts, (multi, single) per dataset.
TABLE = {
    "basic": {"mtt": (2_683_442, 1_869_874), "speech_commands": (2_470_691, 1_664_803),
              "dcase2017_task4": (2_452_241, 1_655_569)},
    "se": {"mtt": (2_858_066, 2_044_498), "speech_commands": (2_628_643, 1_822_755),
           "dcase2017_task4": (2_610_193, 1_813_521)},
    "res1": {"mtt": (2_849_586, 2_036_018), "speech_commands": (2_636_835, 1_830_947),
             "dcase2017_task4": (2_618_385, 1_821_713)},
    "res2": {"mtt": (4_920_882, 4_107_314), "speech_commands": (4_510_755, 3_704_867),
             "dcase2017_task4": (4_492_305, 3_695_633)},
    "rese1": {"mtt": (3_024_210, 2_210_642), "speech_commands": (2_794_787, 1_988_899),
              "dcase2017_task4": (2_776_337, 1_979_665)},
    "rese2": {"mtt": (5_095_506, 4_281_938), "speech_commands": (4_668_707, 3_862_819),
              "dcase2017_task4": (4_650_257, 3_853_585)},
}
CASES = [(b, ds, multi, TABLE[b][ds][0 if multi else 1])
         for b in TABLE for ds in TABLE[b] for multi in (True, False)]


@pytest.mark.parametrize("block,dataset,multi,expected", CASES,
                         ids=[f"{b}-{ds}-{'multi' if m else 'single'}" for b, ds, m, _ in CASES])
def test_parameter_counts_match_seed_specs(block, dataset, multi, expected):
    d = DATASET_DEFAULTS[dataset]
    assert describe(d["n_classes"], d["segment_samples"], block=block, multi=multi)["n_params"] == expected
    model = SampleCNN(d["n_classes"], d["segment_samples"], block=block, multi=multi)
    assert count_parameters(model) == expected


def test_thirty_six_counts():
    assert len(CASES) == 36


def test_blocks_and_widths():
    assert num_blocks_for(59049) == 9 and num_blocks_for(22050) == 8
    assert block_widths(9) == [128, 128, 256, 256, 256, 256, 256, 256, 512]
    assert block_widths(8) == [128, 128, 256, 256, 256, 256, 256, 512]
    assert time_lengths(22050) == [7350, 2450, 816, 272, 90, 30, 10, 3, 1]
    assert time_lengths(59049) == [3 ** i for i in range(9, -1, -1)]
    info = describe(17, 22050, block="se", multi=True)
    assert info["widths"] == block_widths(8) and info["head_features"] == 1024
    assert describe(50, 59049, multi=False)["head_features"] == 512
    for name, d in DATASET_DEFAULTS.items():
        assert num_blocks_for(d["segment_samples"]) == d["num_blocks"], name


@pytest.mark.parametrize("n", [2 * 59049, 6, 5, 0])
def test_lengths_that_do_not_reduce_raise(n):
    with pytest.raises(ValueError, match="segment_samples"):
        SampleCNN(2, n)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="block"):
        SampleCNN(2, 22050, block="res3")
    with pytest.raises(ValueError, match="init"):
        SampleCNN(2, 22050, init="xavier")
    assert SampleCNN(2, 81, multi=True).num_blocks == 3  # stem 27 -> 9 -> 3 -> 1
    assert SampleCNN(2, 27, multi=False).num_blocks == 2
    with pytest.raises(ValueError, match="3 blocks"):
        SampleCNN(2, 27, multi=True)  # stem 9 -> 3 -> 1: only 2 blocks


def test_output_shapes():
    torch.manual_seed(0)
    m = SampleCNN(50, 59049, block="se").eval()
    with torch.no_grad():
        assert m(torch.randn(2, 1, 59049)).shape == (2, 50)
        assert m(torch.randn(2, 59049)).shape == (2, 50)
        assert [o.shape[-1] for o in m.features(torch.randn(2, 59049))] == time_lengths(59049)[1:]
    m = SampleCNN(35, 22050, block="rese2", multi=False).eval()
    with torch.no_grad():
        assert m(torch.randn(2, 1, 22050)).shape == (2, 35)
        outs = m.features(torch.randn(2, 22050))
    assert [o.shape[1:] for o in outs] == [(w, t) for w, t in zip(block_widths(8), time_lengths(22050)[1:])]
    with pytest.raises(ValueError):
        m(torch.randn(2, 2, 22050))


def test_stem_keras_same_padding():
    # Keras 'same', stride 3, k 3: out = ceil(n/3); total pad = (out-1)*3 + 3 - n, odd sample on the right.
    conv = _Conv1d(1, 1, 3, stride=3, taejun_scale=1.0)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[1.0, 10.0, 100.0]]]))
        conv.bias.zero_()
    x = torch.arange(1, 22051, dtype=torch.float32).view(1, 1, -1)
    assert conv(x).shape[-1] == 7350
    for n, (left, right) in [(22050, (0, 0)), (22051, (1, 1)), (22052, (0, 1))]:
        x = torch.arange(1, n + 1, dtype=torch.float32).view(1, 1, -1)
        ref = F.conv1d(F.pad(x, (left, right)), conv.weight, stride=3)
        out = conv(x)
        assert out.shape[-1] == math.ceil(n / 3)
        torch.testing.assert_close(out, ref)
    # stride 1, k 3: symmetric padding of one
    c = _Conv1d(4, 5, 3)
    x = torch.randn(2, 4, 17)
    torch.testing.assert_close(c(x), F.conv1d(x, c.weight, c.bias, padding=1))


def test_keras_batchnorm_defaults():
    m = SampleCNN(2, 22050, block="rese2")
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm1d)]
    assert bns and all(b.eps == 1e-3 and b.momentum == 0.01 for b in bns)


def test_block_structure():
    m = SampleCNN(2, 22050, block="res1")
    assert not any(isinstance(mod, nn.Dropout) for blk in m.blocks for mod in blk.modules())  # one conv: no dropout
    assert all(isinstance(blk, ResidualBlock) and blk.se is None for blk in m.blocks)
    shortcut = [i for i, blk in enumerate(m.blocks) if not isinstance(blk.shortcut, nn.Identity)]
    assert shortcut == [2, 7]  # the two width changes
    m = SampleCNN(2, 22050, block="rese2", res_dropout=0.2)
    drops = [mod.p for blk in m.blocks for mod in blk.modules() if isinstance(mod, nn.Dropout)]
    assert drops == [0.2] * 8
    assert all(isinstance(blk.se, SqueezeExcitation) and blk.se.fc0.out_features == blk.se.fc1.in_features
               == blk.se.fc1.out_features // 8 for blk in m.blocks)
    m = SampleCNN(2, 22050, block="basic")
    assert all(isinstance(blk, BasicBlock) and blk.se is None for blk in m.blocks)


def test_se_scales_channels():
    se = SqueezeExcitation(16, 0.125)
    x = torch.randn(3, 16, 10)
    s = torch.sigmoid(se.fc1(torch.relu(se.fc0(x.mean(-1)))))
    torch.testing.assert_close(se(x), x * s[:, :, None])


def test_original_init_limits():
    torch.manual_seed(0)
    m = SampleCNN(50, 59049, block="rese1")
    stem = m.stem[0]
    assert taejun_limit(stem) == pytest.approx(1.0)  # sqrt(3*1/(3*1*1))
    convs = [(stem, 1.0)] + [(mod, 2.0) for blk in m.blocks for mod in blk.modules()
                            if isinstance(mod, _Conv1d) and mod.taejun_scale is not None]
    assert len(convs) == 1 + 9
    for conv, scale in convs:
        k, cin = conv.kernel_size[0], conv.in_channels
        limit = math.sqrt(3 * scale / (k * cin ** 2))
        assert taejun_limit(conv) == pytest.approx(limit)
        w = conv.weight.abs().max().item()
        assert w <= limit and w >= 0.97 * limit
        assert torch.count_nonzero(conv.bias) == 0
    # block 2 conv: 128 inputs, scale 2 -> sqrt(2)/128
    assert taejun_limit(m.blocks[2].branch[0]) == pytest.approx(math.sqrt(2) / 128)
    # 1x1 shortcuts, SE and head Linear layers: Glorot-uniform, zero bias
    glorot = [blk.shortcut[0] for blk in m.blocks if not isinstance(blk.shortcut, nn.Identity)]
    glorot += [mod for mod in m.modules() if isinstance(mod, nn.Linear)]
    assert len(glorot) == 2 + 2 * 9 + 2
    with pytest.raises(ValueError, match="Glorot"):
        taejun_limit(glorot[0])
    for layer in glorot:
        fan_in, fan_out = layer.weight.shape[1], layer.weight.shape[0]
        limit = math.sqrt(6 / (fan_in + fan_out))
        w = layer.weight.abs().max().item()
        assert w <= limit and w >= 0.9 * limit
        assert torch.count_nonzero(layer.bias) == 0


def test_kaiming_init_is_pytorch_default():
    torch.manual_seed(0)
    m = SampleCNN(2, 22050, block="basic", init="kaiming")
    conv = m.blocks[2].conv
    bound = 1 / math.sqrt(conv.in_channels * 3)  # PyTorch default Conv1d bound (kaiming_uniform a=sqrt(5))
    assert conv.weight.abs().max().item() <= bound and conv.weight.abs().max().item() > taejun_limit(conv)
    assert torch.count_nonzero(conv.bias) > 0


def test_determinism_with_seed():
    x = torch.randn(2, 22050)
    outs, states = [], []
    for _ in range(2):
        torch.manual_seed(123)
        m = SampleCNN(17, 22050, block="se")
        outs.append(m.train()(x))  # dropout draws from the same seeded RNG
        states.append(m.state_dict())
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    torch.manual_seed(124)
    other = SampleCNN(17, 22050, block="se")
    assert not torch.equal(other.stem[0].weight, states[0]["stem.0.weight"])


def test_short_overfit():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 22050) * 0.2
    y = torch.tensor([0, 1, 0, 1])
    m = SampleCNN(2, 22050, block="basic").train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < 0.5 * losses[0], losses


def test_dataset_constants():
    assert DATASET_DEFAULTS["mtt"]["n_classes"] == 50 and DATASET_DEFAULTS["mtt"]["segment_samples"] == 59049
    assert DATASET_DEFAULTS["speech_commands"]["n_classes"] == 35
    assert DATASET_DEFAULTS["dcase2017_task4"]["n_classes"] == 17
    assert all(d["sample_rate"] == 22050 for d in DATASET_DEFAULTS.values())
    assert STANDARDISATION["mtt"] == pytest.approx((-0.0001650025, 0.1551194), rel=1e-6)
    assert STANDARDISATION["speech_commands"] == pytest.approx((-8.520474e-05, 0.18))
    assert STANDARDISATION["dcase2017_task4"] == pytest.approx((-0.00033206795, 0.2051463), rel=1e-6)
    for name, d in DATASET_DEFAULTS.items():
        assert d["segments_per_clip"] == d["clip_seconds"] * d["sample_rate"] // d["segment_samples"], name
