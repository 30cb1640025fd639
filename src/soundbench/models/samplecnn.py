"""SampleCNN (Kim, Lee, Nam; IEEE JSTSP 13(2):285-297, 2019): sample-level CNN on raw waveforms, PyTorch port.

Faithful to the authors' TF/Keras code (tae-jun/sampleaudio: lib/model.py, lib/model_config.py,
lib/initialization.py, lib/data/config.py); see seed-specs section 2.

Architecture (data layout (batch, channels, time); Keras uses channels-last, which changes nothing else):

- stem: Conv1d(1 -> 128, k=3, stride 3, Keras 'same' padding, bias) -> BN -> ReLU. Output length ceil(n / 3).
- ``num_blocks`` blocks, each ending with MaxPool1d(3) (valid, floor). ``num_blocks`` is the number of these
  pools that take the stem output to length 1 (9 for 59,049 samples, 8 for 22,050). Widths start at 128 and
  double at block index 2 and at the last block (9 blocks: 128,128,256,256,256,256,256,256,512).
- block types:
  ``basic``  conv(k=3, same, bias) -> BN -> ReLU -> pool
  ``se``     basic, then squeeze-excitation on the pooled output:
             GAP over time -> Linear(C, int(C*r)) -> ReLU -> Linear(int(C*r), C) -> sigmoid -> channel scale
  ``resN``   N x [conv -> BN], with ReLU -> Dropout(0.2) between consecutive convs (so none for N=1);
             shortcut = 1x1 conv(bias) -> BN when the width changes, else identity; add -> ReLU -> pool
  ``reseN``  resN with squeeze-excitation on the residual branch (after its last BN), before the addition
- head: global max over time of the last 3 block outputs concatenated (``multi``) or of the last one, then
  Linear(F, F) -> BN -> ReLU -> Dropout(0.5) -> Linear(F, n_classes).

``forward`` returns LOGITS. The original ends with sigmoid (mtt, dcase2017_task4) or softmax (speech_commands)
and trains with binary / categorical cross-entropy; ``BCEWithLogitsLoss`` / ``CrossEntropyLoss`` on these logits
is the same loss, computed stably; the task applies ``sigmoid`` / ``softmax`` (soundbench/tasks.py).

BatchNorm uses the Keras defaults: eps 1e-3, moving-average momentum 0.99 (PyTorch ``momentum=0.01``).

Initialisation ``init="original"`` (lib/initialization.py + lib/model.py):

- the stem conv and every k=3 block conv: ``taejun_uniform``, a variance scaling, uniform, mode fan_in, scale 2
  (stem: scale 1), whose fan_in is miscomputed as in_channels * (kernel * in_channels) (the authors' own comment
  says it should be the kernel only). Limit = sqrt(3 * scale / max(1, k * Cin^2)).
- the 1x1 shortcut convs, the SE layers and both head Linear layers: Glorot-uniform.
- every bias zero; BN gamma 1, beta 0, moving mean 0, moving variance 1 (Keras defaults).

``init="kaiming"`` keeps PyTorch's default ``reset_parameters`` for every layer (Kaiming-uniform with a=sqrt(5)
for weights, uniform biases): a documented departure option, not the original.

Not reproduced here (training-side, see seed-specs 2.5): the original's l2 kernel regularizer, which is 0 in every
run because train.py never passes ``--weight-decay`` on. Note also that the original CLI's ``--multi`` is a
``store_true`` flag (off unless given) while ``ModelConfig`` defaults to multi=True; this port follows the brief
and defaults to ``multi=True``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BLOCKS = ("basic", "se", "res1", "res2", "rese1", "rese2")
INITS = ("original", "kaiming")
INIT_FEATURES = 128
STEM_STRIDE = 3
POOL = 3
BN_EPS = 1e-3  # Keras BatchNormalization default epsilon
BN_MOMENTUM = 0.01  # PyTorch convention for Keras momentum=0.99

# Global standardisation constants (x - mean) / std, full precision as in lib/data/config.py (seed-specs 2.3).
STANDARDISATION = {
    "mtt": (-0.0001650025078561157, 0.1551193743944168),
    "speech_commands": (-8.520474e-05, 0.18),
    "dcase2017_task4": (-0.0003320679534226656, 0.20514629781246185),
}
# One example's shape and the head of each dataset of the paper (lib/data/config.py; seed-specs 2.2-2.3)
DATASET_DEFAULTS = {
    "mtt": dict(n_classes=50, segment_samples=59049, sample_rate=22050, clip_seconds=29, segments_per_clip=10,
                num_blocks=9),
    "speech_commands": dict(n_classes=35, segment_samples=22050, sample_rate=22050, clip_seconds=1,
                            segments_per_clip=1, num_blocks=8),
    "dcase2017_task4": dict(n_classes=17, segment_samples=22050, sample_rate=22050, clip_seconds=10,
                            segments_per_clip=10, num_blocks=8),
}


# ----------------------------------------------------------------------------------------------- shape arithmetic

def stem_length(segment_samples: int) -> int:
    """Output length of the stride-3 stem with Keras 'same' padding: ceil(n / 3)."""
    return -(-int(segment_samples) // STEM_STRIDE)


def time_lengths(segment_samples: int) -> list[int]:
    """[stem output, block 0 output, ..., last block output (= 1)]; ValueError if the length does not reduce."""
    n = int(segment_samples)
    if n < STEM_STRIDE * POOL:
        raise ValueError(f"segment_samples={n} is too short for SampleCNN (needs at least {STEM_STRIDE * POOL})")
    lengths = [stem_length(n)]
    while lengths[-1] > 1:
        lengths.append(lengths[-1] // POOL)
    if lengths[-1] != 1:
        raise ValueError(
            f"segment_samples={n} does not reduce cleanly to one frame: stem + MaxPool(3) stages give "
            f"{' -> '.join(map(str, lengths))}; a MaxPool(3) on a length-2 axis leaves nothing. Use a length whose "
            f"stage chain ends at 1, e.g. 59049 (3^10, 9 blocks) or 22050 (8 blocks)")
    return lengths


def num_blocks_for(segment_samples: int) -> int:
    """Number of blocks: the MaxPool(3) stages after the stem until the time axis is 1 (59049 -> 9, 22050 -> 8)."""
    return len(time_lengths(segment_samples)) - 1


def block_widths(num_blocks: int, init_features: int = INIT_FEATURES) -> list[int]:
    """Widths of the blocks: double at block index 2 and at the last block (as lib/model.py)."""
    widths, c = [], init_features
    for i in range(num_blocks):
        c *= 2 if (i == 2 or i == num_blocks - 1) else 1
        widths.append(c)
    return widths


# ----------------------------------------------------------------------------------------------- layers

def _bn(c: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class _Conv1d(nn.Conv1d):
    """Conv1d with Keras 'same' padding for any stride, and the taejun_uniform scale it is initialised with.

    ``taejun_scale=None`` marks a conv the original initialises with Glorot-uniform (the 1x1 shortcuts).
    Keras 'same': output length ceil(L / stride), total padding max((out - 1) * stride + k - L, 0), the odd
    sample going to the right.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 taejun_scale: float | None = 2.0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=True)
        self.taejun_scale = taejun_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, length = self.kernel_size[0], self.stride[0], x.shape[-1]
        out = -(-length // s)
        total = max((out - 1) * s + k - length, 0)
        if total:
            x = F.pad(x, (total // 2, total - total // 2))
        return super().forward(x)


class SqueezeExcitation(nn.Module):
    """GAP over time -> Linear(C, int(C*r)) -> ReLU -> Linear(-, C) -> sigmoid; returns x scaled per channel."""

    def __init__(self, channels: int, amplifying_ratio: float):
        super().__init__()
        hidden = int(channels * amplifying_ratio)  # Keras Dense casts its float unit count with int()
        if hidden < 1:
            raise ValueError(f"amplifying_ratio={amplifying_ratio} gives an empty SE bottleneck for "
                             f"{channels} channels")
        self.fc0 = nn.Linear(channels, hidden)
        self.fc1 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.fc1(F.relu(self.fc0(x.mean(dim=-1)))))
        return x * s.unsqueeze(-1)


class BasicBlock(nn.Module):
    """conv(k=3, same) -> BN -> ReLU -> MaxPool(3), optionally followed by squeeze-excitation (``se`` block)."""

    def __init__(self, in_channels: int, out_channels: int, amplifying_ratio: float | None = None):
        super().__init__()
        self.conv = _Conv1d(in_channels, out_channels, 3)
        self.norm = _bn(out_channels)
        self.pool = nn.MaxPool1d(POOL)
        self.se = SqueezeExcitation(out_channels, amplifying_ratio) if amplifying_ratio else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.norm(self.conv(x))))
        return self.se(x) if self.se is not None else x


class ResidualBlock(nn.Module):
    """Res-N / ReSE-N block: N x [conv -> BN] (ReLU + Dropout between), optional SE, + shortcut, ReLU, pool."""

    def __init__(self, in_channels: int, out_channels: int, num_convs: int, amplifying_ratio: float | None = None,
                 res_dropout: float = 0.2):
        super().__init__()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(_Conv1d(in_channels, out_channels, 1, taejun_scale=None),
                                          _bn(out_channels))
        else:
            self.shortcut = nn.Identity()
        layers: list[nn.Module] = []
        c = in_channels
        for i in range(num_convs):
            if i > 0:
                layers += [nn.ReLU(), nn.Dropout(res_dropout)]
            layers += [_Conv1d(c, out_channels, 3), _bn(out_channels)]
            c = out_channels
        self.branch = nn.Sequential(*layers)
        self.se = SqueezeExcitation(out_channels, amplifying_ratio) if amplifying_ratio else None
        self.pool = nn.MaxPool1d(POOL)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch(x)
        if self.se is not None:
            y = self.se(y)
        return self.pool(F.relu(self.shortcut(x) + y))


# ----------------------------------------------------------------------------------------------- model

class SampleCNN(nn.Module):
    """SampleCNN on raw waveform segments; ``forward`` maps (batch, [1,] samples) to logits (batch, n_classes).

    The block count follows ``segment_samples`` (see ``num_blocks_for``). Other input lengths are accepted by
    ``forward`` as long as every pool keeps at least one frame (the global max-pool absorbs the rest), like the
    original's variable-length input.
    """

    def __init__(self, n_classes: int, segment_samples: int = 59049, block: str = "se", multi: bool = True,
                 amplifying_ratio: float = 0.125, dropout: float = 0.5, res_dropout: float = 0.2,
                 init: str = "original", init_features: int = INIT_FEATURES):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; choose one of {', '.join(BLOCKS)}")
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
        if int(n_classes) < 1:
            raise ValueError(f"n_classes must be positive, got {n_classes}")
        self.n_classes = int(n_classes)
        self.segment_samples = int(segment_samples)
        self.block = block
        self.multi = bool(multi)
        self.init = init
        self.num_blocks = num_blocks_for(self.segment_samples)
        if self.multi and self.num_blocks < 3:
            raise ValueError(f"multi-level aggregation needs >= 3 blocks; segment_samples={segment_samples} gives "
                             f"{self.num_blocks}")
        # init_features: the stem width (128 in the paper); smaller values give the demo's small SampleCNN
        self.widths = block_widths(self.num_blocks, int(init_features))

        self.stem = nn.Sequential(_Conv1d(1, int(init_features), 3, stride=STEM_STRIDE, taejun_scale=1.0),
                                  _bn(int(init_features)), nn.ReLU())
        ratio = amplifying_ratio if block in ("se", "rese1", "rese2") else None
        blocks: list[nn.Module] = []
        c = int(init_features)
        for w in self.widths:
            if block in ("basic", "se"):
                blocks.append(BasicBlock(c, w, ratio))
            else:
                blocks.append(ResidualBlock(c, w, int(block[-1]), ratio, res_dropout))
            c = w
        self.blocks = nn.ModuleList(blocks)

        features = sum(self.widths[-3:]) if self.multi else self.widths[-1]
        self.head_features = features
        self.fc = nn.Linear(features, features)
        self.fc_norm = _bn(features)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.logit = nn.Linear(features, self.n_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw every parameter with the configured scheme (uses the global torch RNG)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear, nn.BatchNorm1d)):
                m.reset_parameters()  # PyTorch defaults; BN: gamma 1, beta 0, running mean 0 / var 1
        if self.init == "kaiming":
            return
        for m in self.modules():
            if isinstance(m, _Conv1d) and m.taejun_scale is not None:
                with torch.no_grad():
                    m.weight.uniform_(-taejun_limit(m), taejun_limit(m))
            elif isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of every block, (batch, width, time) each."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"expected input (batch, samples) or (batch, 1, samples), got {tuple(x.shape)}")
        x = self.stem(x)
        outs = []
        for blk in self.blocks:
            x = blk(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = self.features(x)
        taken = outs[-3:] if self.multi else outs[-1:]
        h = torch.cat([o.amax(dim=-1) for o in taken], dim=1)
        h = self.dropout(F.relu(self.fc_norm(self.fc(h))))
        return self.logit(h)


def taejun_limit(conv: nn.Conv1d, scale: float | None = None) -> float:
    """Uniform limit of the original ``taejun_uniform``: sqrt(3 * scale / max(1, k * Cin * Cin)).

    The original's fan_in is in_channels * (kernel * in_channels) -- one in_channels too many (its own comment).
    """
    if scale is None:
        scale = getattr(conv, "taejun_scale", None)
        if scale is None:
            raise ValueError("this conv is Glorot-initialised in the original (no taejun scale); pass scale=")
    k, cin = conv.kernel_size[0], conv.in_channels
    return math.sqrt(3.0 * scale / max(1.0, k * cin * cin))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (BN moving statistics are buffers, so not counted, as in Keras)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe(n_classes: int, segment_samples: int = 59049, **kw) -> dict:
    """Static facts of a configuration: trainable parameter count, block count and widths, time lengths."""
    with torch.device("meta"):  # no memory, no initialisation cost
        model = SampleCNN(n_classes, segment_samples, **kw)
    return {
        "n_params": count_parameters(model),
        "num_blocks": model.num_blocks,
        "widths": list(model.widths),
        "time_lengths": time_lengths(segment_samples),
        "head_features": model.head_features,
        "block": model.block,
        "multi": model.multi,
        "n_classes": model.n_classes,
        "segment_samples": model.segment_samples,
    }
