"""SubSpectralNet (Phaye, Benetos, Wang; ICASSP 2019; arXiv 1810.12642): sub-band CNNs with n + 1 classifiers.

A port of the authors' Keras script (ssrp/SubSpectralNet, code/SubSpectralNet.py; facts in seed-specs section 3).
Input (batch, 2, M, T): the left and right log-mel spectrograms as two channels (M mel bins, T = 500 frames).

- Sub-spectrograms: rows [i*h, i*h + S) for i = 0 .. (M - S) // h, so n = (M - S) // h + 1 bands of S bins
  (S = ``sub_size``, h = ``sub_hop``). Every band has its own weights:
    Conv 32, 7x7 same -> BatchNorm -> ReLU -> MaxPool (S/10, 5) -> Dropout 0.3
    -> Conv 64, 7x7 same -> BatchNorm -> ReLU -> MaxPool (4, 100) -> Dropout 0.3
    -> Flatten -> Dense 32 ReLU (the band feature) -> Dropout 0.3 -> Dense n_classes (the sub-classifier)
  Pools are Keras 'valid' (floor). For S a multiple of 10 the second conv always sees 10 rows, and a band ends
  as 2 x 1 x 64 = 128 values at T = 500.
- Global classifier on the n band features taken BEFORE their dropout, concatenated (n*32 values): Dense layers
  of width 2^k, 2^(k-1), ..., 64 with k = floor(log2(n*32)), each ReLU + Dropout 0.3, then Dense n_classes.
  n = 3 -> one Dense 64; n = 19 -> 512, 256, 128, 64; n = 1 -> none (32 < 64).
- BatchNorm: ``bn="frequency"`` (the original: Keras ``axis=1`` on channels-last input normalises each mel ROW
  over batch, time and channels, so it has S (first) and 10 (second) gammas) or ``bn="channel"`` (per feature
  map, the usual choice; a departure option). Keras defaults: eps 1e-3, moving-average decay 0.99 (PyTorch
  momentum 0.01); gamma and beta carry an L2 penalty of 1e-4 (``bn_l2``), which the system's loss adds.
- Initialisation as Keras: convs he_normal (truncated at 2 std, std sqrt(2 / fan_in)), Dense glorot-uniform,
  biases zero, BN gamma 1 / beta 0.

Outputs (a dict, LOGITS; the task's softmax turns them into the original's softmax outputs):
  "logits"  (batch, n_classes) the global classifier: the prediction
  "sub"     (batch, n, n_classes) the n sub-classifiers (absent with sub_classifiers=False)

The original's loss is the sum of the n + 1 categorical cross-entropies, equal weights (``loss`` below).

Variants of the original logs (seed-specs 3.1), as options:
  sub_classifiers=False   "No Separate Classifiers": the global classifier alone, one loss
  global_classifier=False the single-CNN baseline ("200 Baseline", log_200.200.10): one band over all M bins
                          (sub_size = M), its own classifier is the only output. The baseline's script is not in
                          the repository; this reading follows the log name and its single accuracy column.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_MODES = ("frequency", "channel")
MIN_GLOBAL_WIDTH = 64  # the halving Dense stack of the global classifier stops at 64


def n_bands(n_mels: int, sub_size: int, sub_hop: int) -> int:
    """n = floor((M - S) / h) + 1 sub-spectrograms."""
    if not 0 < sub_size <= n_mels:
        raise ValueError(f"params.sub_size: {sub_size} must be in 1..{n_mels} (the input's mel bins)")
    if sub_hop < 1:
        raise ValueError(f"params.sub_hop: {sub_hop} must be >= 1")
    return (n_mels - sub_size) // sub_hop + 1


def global_widths(n_features: int) -> list[int]:
    """Widths of the global classifier's hidden Dense layers: 2^k, 2^(k-1), ... >= 64, k = floor(log2(n))."""
    widths, w = [], 1 << (n_features.bit_length() - 1)
    while w >= MIN_GLOBAL_WIDTH:
        widths.append(w)
        w //= 2
    return widths


class FrequencyBatchNorm(nn.Module):
    """Keras BatchNormalization(axis=1) on (batch, rows, time, channels): statistics and gamma/beta per ROW.

    Here the input is (batch, channels, rows, time). The rows become BatchNorm1d's features over a view without a
    copy: (batch, rows, time * channels) of a channels-last tensor, (batch * channels, rows, time) of a contiguous
    one; either way the statistics are over batch, channels and time."""

    def __init__(self, rows: int, eps: float, momentum: float):
        super().__init__()
        self.bn = nn.BatchNorm1d(rows, eps=eps, momentum=momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            y = self.bn(x.permute(0, 2, 3, 1).reshape(b, h, w * c))
            return y.view(b, h, w, c).permute(0, 3, 1, 2)
        return self.bn(x.reshape(b * c, h, w)).view(b, c, h, w)


class Dropout(nn.Module):
    """nn.Dropout whose mask is drawn in the tensor's logical order, whatever its memory format: nn.Dropout fills
    the mask in memory order, so a channels-last run (train.channels_last) would drop other units than a
    contiguous one. For a contiguous input this draws and computes exactly what nn.Dropout does."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        noise = torch.empty(x.shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.p)
        return x * noise.div_(1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _batch_norm(mode: str, channels: int, rows: int, eps: float, momentum: float) -> nn.Module:
    if mode == "frequency":
        return FrequencyBatchNorm(rows, eps, momentum)
    return nn.BatchNorm2d(channels, eps=eps, momentum=momentum)


class Band(nn.Module):
    """The CNN of one sub-spectrogram, up to its band feature (Dense 32 ReLU) and its classifier."""

    def __init__(self, n_classes: int | None, in_channels: int, rows: int, frames: int, channels, kernel: int,
                 pool_time, pool_freq2: int, band_features: int, dropout: float, bn: str, eps: float,
                 momentum: float):
        super().__init__()
        c1, c2 = channels
        if rows % 10:
            raise ValueError(f"params.sub_size: {rows} is not a multiple of 10 (the first max-pool is S/10 rows)")
        p1 = rows // 10
        rows1, t1 = rows // p1, frames // pool_time[0]
        rows2, t2 = rows1 // pool_freq2, t1 // pool_time[1]
        if rows2 < 1 or t2 < 1:
            raise ValueError(f"params.pool_time {list(pool_time)} / pool_freq2 {pool_freq2}: a {rows} x {frames} "
                             f"band pools to {rows2} x {t2} (the original needs 500 frames for pool_time [5, 100])")
        if kernel % 2 == 0:
            raise ValueError(f"params.kernel: {kernel} must be odd (Keras 'same' padding pads an even kernel unevenly)")
        pad = kernel // 2
        self.conv1 = nn.Conv2d(in_channels, c1, kernel, padding=pad)
        self.bn1 = _batch_norm(bn, c1, rows, eps, momentum)
        self.pool1 = nn.MaxPool2d((p1, pool_time[0]))
        self.conv2 = nn.Conv2d(c1, c2, kernel, padding=pad)
        self.bn2 = _batch_norm(bn, c2, rows1, eps, momentum)
        self.pool2 = nn.MaxPool2d((pool_freq2, pool_time[1]))
        self.drop = Dropout(dropout)
        self.feature = nn.Linear(c2 * rows2 * t2, band_features)
        self.classifier = nn.Linear(band_features, n_classes) if n_classes else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (band feature before its dropout, sub-classifier logits or None)."""
        h = self.drop(self.pool1(F.relu(self.bn1(self.conv1(x)))))
        h = self.drop(self.pool2(F.relu(self.bn2(self.conv2(h)))))
        feature = F.relu(self.feature(h.flatten(1)))
        logits = self.classifier(self.drop(feature)) if self.classifier is not None else None
        return feature, logits


class SubSpectralNet(nn.Module):
    def __init__(self, n_classes: int, in_channels: int, n_mels: int, n_frames: int, sub_size: int = 20,
                 sub_hop: int = 10, sub_classifiers: bool = True, global_classifier: bool = True,
                 bn: str = "frequency", bn_decay: float = 0.99, bn_eps: float = 1e-3, channels=(32, 64),
                 kernel: int = 7, pool_time=(5, 100), pool_freq2: int = 4, band_features: int = 32,
                 dropout: float = 0.3):
        super().__init__()
        if bn not in BN_MODES:
            raise ValueError(f"params.bn: {bn!r} is not one of {', '.join(BN_MODES)}")
        if len(channels) != 2 or len(pool_time) != 2:
            raise ValueError(f"params.channels {list(channels)} and params.pool_time {list(pool_time)} take two "
                             f"values (the two conv blocks)")
        if not (sub_classifiers or global_classifier):
            raise ValueError("params: sub_classifiers and global_classifier cannot both be false")
        self.n_mels, self.sub_size, self.sub_hop = n_mels, sub_size, sub_hop
        self.n = n_bands(n_mels, sub_size, sub_hop)
        if not global_classifier and self.n != 1:
            raise ValueError(f"params.global_classifier: false is the single-CNN baseline, which needs one band "
                             f"(sub_size = n_mels = {n_mels}); sub_size {sub_size}, sub_hop {sub_hop} give {self.n}")
        self.has_sub = sub_classifiers and global_classifier
        band_classes = n_classes if (sub_classifiers or not global_classifier) else None
        self.bands = nn.ModuleList(
            Band(band_classes, in_channels, sub_size, n_frames, channels, kernel, pool_time, pool_freq2,
                 band_features, dropout, bn, bn_eps, 1.0 - bn_decay) for _ in range(self.n))
        self.global_classifier = None
        if global_classifier:
            layers: list[nn.Module] = []
            width = self.n * band_features
            for w in global_widths(width):
                layers += [nn.Linear(width, w), nn.ReLU(), Dropout(dropout)]
                width = w
            layers.append(nn.Linear(width, n_classes))
            self.global_classifier = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras initialisers: he_normal convs (truncated normal), glorot-uniform Dense, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                std = math.sqrt(2.0 / fan_in)
                nn.init.trunc_normal_(m.weight, 0.0, std, -2 * std, 2 * std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def band_slices(self) -> list[tuple[int, int]]:
        return [(i * self.sub_hop, i * self.sub_hop + self.sub_size) for i in range(self.n)]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.shape[2] != self.n_mels:
            raise ValueError(f"SubSpectralNet built for {self.n_mels} mel bins got an input of {x.shape[2]}")
        features, subs = [], []
        for band, (a, b) in zip(self.bands, self.band_slices()):
            feature, logits = band(x[:, :, a:b])
            features.append(feature)
            subs.append(logits)
        if self.global_classifier is None:  # the single-CNN baseline: the band's classifier is the prediction
            return {"logits": subs[0]}
        out = {"logits": self.global_classifier(torch.cat(features, dim=1))}
        if self.has_sub:
            out["sub"] = torch.stack(subs, dim=1)
        return out

    def bn_penalty(self) -> torch.Tensor:
        """sum of gamma^2 + beta^2 over every BatchNorm (the original's l2(1e-4) regularisers, without the 1e-4)."""
        total = torch.zeros((), device=next(self.parameters()).device)
        for m in self.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                total = total + m.weight.pow(2).sum() + m.bias.pow(2).sum()
        return total


def loss(outputs: dict, batch: dict, ctx) -> torch.Tensor:
    """The sum of the n + 1 cross-entropies (one per sub-classifier and the global one, the same target), plus the
    L2 penalty bn_l2 * sum(gamma^2 + beta^2) of the BatchNorm layers (Keras adds regularisers to the loss)."""
    y = batch["y"]
    total = F.cross_entropy(outputs["logits"], y)
    sub = outputs.get("sub")
    if sub is not None:
        n, k = sub.shape[1], sub.shape[2]
        # mean over the batch per output, summed over the n outputs
        total = total + F.cross_entropy(sub.reshape(-1, k), y.repeat_interleave(n), reduction="sum") / len(y)
    l2 = float(ctx.params.get("bn_l2", 0.0))
    if l2 and getattr(ctx, "model", None) is not None:
        total = total + l2 * ctx.model.bn_penalty()
    return total


def build(n_classes: int, shapes: dict, **params) -> SubSpectralNet:
    """The model for an input (channels, mels, frames); params.n_mels (when set) must equal the input's mels."""
    if "x" not in shapes or len(shapes["x"]) != 3:
        raise ValueError(f"SubSpectralNet takes one log-mel input (channels, mels, frames); got {shapes}")
    c, m, t = shapes["x"]
    params = dict(params)
    want = params.pop("n_mels", None)
    if want is not None and int(want) != m:
        raise ValueError(f"params.n_mels: {want} but the feature has {m} mel bins")
    params.pop("bn_l2", None)  # a loss setting
    return SubSpectralNet(n_classes, c, m, t, **params)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
