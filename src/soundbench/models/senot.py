"""SeNoT-Net (Zhang, Han, Shi; IEEE SPL 27, 2020): an inflated 3-D ResNet-18 with "semantic neighbours over time".

A port of zlw9161/SeNoT-Net (models/resnet18_senot_128_80.py, models/preact18_senot_128_80.py, utils/net_utils.py;
facts in seed-specs section 1.4). Input (batch, 3, S, F, T): the L, R, L-R log-mel channels of S segments of T
frames (the paper: 8 x 128 x 80).

Trunk (``trunk``: resnet18 | preact18): every convolution is 1 x 3 x 3 (segment x frequency x time), so no
convolution mixes segments; the segments are folded into the batch and each 1 x 3 x 3 kernel runs as a 2-D
convolution (the same arithmetic as a 3-D one with a kernel depth of 1). Convolutions have a bias AND a BatchNorm
(tf_util), eps 1e-3, MSRA (variance scaling, fan-in, truncated normal) weights and zero biases. TensorFlow 'SAME'
padding is reproduced exactly: a stride-2 3 x 3 window pads only after (right/bottom), the stem's max-pool too.
  stem   conv 3x3 widths[0], BN, ReLU; max-pool 3x3 stride 2 (SAME)
  group g = 0..3, 2 blocks, widths[g], first-block stride (1, 2, 2, 2)
  resnet18 block: conv-BN-ReLU, conv-BN, shortcut 1x1 conv-BN when the width changes; sum (+ SeNoT); ReLU
  preact18: block 0 as resnet18 without BN on conv2 and the shortcut; block 1 pre-activates its input
            (BN-ReLU) before conv1, conv2 without BN, then "bnlast" (BN-ReLU) after the sum; (+ SeNoT); ReLU
  head   mean over segments, frequency and time; dropout 0.5; linear to the classes
SeNoT modules (``modules``) after both blocks of groups 1 and 2 (``module_groups``), group 1 at half resolution
(``shrink``: TF1's legacy bilinear resize down and back up), each:
  kNN: for every point (segment, row, column) its k = 4 nearest points by L2 distance among the points of the
       OTHER segments (``knn_other_segments``: batched on the device, one distance matrix per chunk of examples)
  relation MLP on (dt, dh, dw, x_i, x_j) (coordinates scaled to [0, 1)): widths [C/4, C/2], each a 1x1 layer
       with bias, BN and ReLU; max over the k neighbours; 1x1x1 projection to C (bias); BN with gamma = 0 (the
       module starts as the identity); added to the block's sum before its ReLU.
The first relation layer is linear in the concatenation, so it is computed as W_c dt + W_i x_i + W_j x_j with
x_j's product gathered per neighbour: the same function and gradients as concatenating first, without
materialising (points x k x (2C + 3)) values. ``dims=2`` builds the same trunk with plain 2-D kernels and no
modules: the 2-D pre-training network on single segments (``inflate`` maps its weights onto the 3-D one).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

TRUNKS = ("resnet18", "preact18")
PAPER_WIDTHS = (64, 128, 256, 512)
STRIDES = (1, 2, 2, 2)
BN_EPS = 1e-3  # tf.contrib.layers.batch_norm's default epsilon
MASK = 1e8  # the original's penalty on same-segment pairs (its CUDA op and knn_l2 both use -1e8)
# distance matrices of one kNN chunk: at most this many bytes (batch 16 at group 1 of the paper's input needs
# 16 x 1280^2 x 4 B = 105 MB at once; chunks of 10 examples keep the search under 64 MiB)
KNN_CHUNK_BYTES = 64 << 20


# --------------------------------------------------------------------------------------------- neighbour search
def segment_mask(n_segments: int, per_segment: int, device=None) -> torch.Tensor:
    """(N, N) bool, True where two points lie in the same segment (points ordered segment-major)."""
    seg = torch.arange(n_segments * per_segment, device=device) // per_segment
    return seg[:, None] == seg[None, :]


def knn_other_segments(x: torch.Tensor, k: int, per_segment: int, chunk_bytes: int = KNN_CHUNK_BYTES
                       ) -> torch.Tensor:
    """Indices (B, N, k) of each point's k nearest points by squared L2 distance among the points of other segments.

    x: (B, N, C) points ordered segment-major, N = segments * per_segment. Runs without gradients (indices are not
    differentiable; gather the features with them to keep the gradient). One (chunk, N, N) distance matrix at a
    time, the chunk the most examples that fit chunk_bytes; a loop of fixed trip count, so it compiles."""
    b, n, _ = x.shape
    if n % per_segment:
        raise ValueError(f"SeNoT kNN: {n} points are not whole segments of {per_segment}")
    if k > n - per_segment:
        raise ValueError(f"SeNoT kNN: k = {k} neighbours but only {n - per_segment} points in other segments")
    chunk = max(1, min(b, chunk_bytes // max(1, n * n * x.element_size())))
    with torch.no_grad():
        x = x.detach()
        same = segment_mask(n // per_segment, per_segment, x.device)
        out = []
        for start in range(0, b, chunk):
            xc = x[start:start + chunk]
            sq = xc.pow(2).sum(-1)
            # ||xi||^2 + ||xj||^2 - 2 xi.xj, built in place in one buffer
            d = torch.baddbmm(sq[:, :, None], xc, xc.transpose(1, 2), beta=1.0, alpha=-2.0)
            d.add_(sq[:, None, :]).masked_fill_(same, MASK)
            out.append(d.topk(k, dim=-1, largest=False, sorted=True).indices)
            del d  # before the next chunk's matrix exists
        return torch.cat(out) if len(out) > 1 else out[0]


def knn_brute_force(x: torch.Tensor, k: int, per_segment: int) -> torch.Tensor:
    """The reference: per example and point, sort the distances to every point of another segment (for tests)."""
    b, n, _ = x.shape
    idx = torch.empty(b, n, k, dtype=torch.long)
    for e in range(b):
        for i in range(n):
            others = [j for j in range(n) if j // per_segment != i // per_segment]
            d = torch.stack([((x[e, i] - x[e, j]) ** 2).sum() for j in others])
            idx[e, i] = torch.tensor(others)[d.argsort(stable=True)[:k]]
    return idx


# ------------------------------------------------------------------------------------------ TF-exact helpers
def resize_bilinear_legacy(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """tf.image.resize_images(BILINEAR) of TF 1.x (align_corners=False, no half-pixel centres): output pixel i
    samples the input at i * in / out, clamped at the last row/column. Halving an even size takes every other
    pixel; doubling interpolates midway (PyTorch's half-pixel bilinear differs)."""
    out = x
    for axis, (n_in, n_out) in zip((-2, -1), zip(x.shape[-2:], size)):
        if n_in == n_out:
            continue
        src = torch.arange(n_out, device=x.device, dtype=torch.float64) * (n_in / n_out)
        lo = src.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        frac = (src - lo).to(x.dtype)
        a, b = out.index_select(axis, lo), out.index_select(axis, hi)
        shape = [1] * out.dim()
        shape[axis] = n_out
        out = a + (b - a) * frac.view(shape)
    return out


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) of one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SegmentConv(nn.Module):
    """A k x k convolution with TF 'SAME' padding, bias and MSRA init, applied per segment (segments folded into
    the batch). inflated=True stores the weight as the 3-D kernel (out, in, 1, k, k) of the original; False as
    the 2-D kernel (out, in, k, k) of the pre-training network."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, inflated: bool):
        super().__init__()
        self.stride, self.kernel = stride, kernel
        shape = (c_out, c_in, 1, kernel, kernel) if inflated else (c_out, c_in, kernel, kernel)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.zeros(c_out))
        msra_(self.weight, c_in * kernel * kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight[:, :, 0] if self.weight.dim() == 5 else self.weight
        (t, b_), (left, right) = (_same_pad(x.shape[-2], self.kernel, self.stride),
                                  _same_pad(x.shape[-1], self.kernel, self.stride))
        if t == b_ and left == right:
            return F.conv2d(x, w, self.bias, self.stride, (t, left))
        return F.conv2d(F.pad(x, (left, right, t, b_)), w, self.bias, self.stride)


def msra_(weight: torch.Tensor, fan_in: int) -> None:
    """tf.contrib.layers.variance_scaling_initializer() (tf_util's 'msra'): factor 2, FAN_IN, a normal truncated
    at 2 std with std sqrt(1.3 * 2 / fan_in) (1.3 offsets the truncation: the variance comes out near 2 / fan_in)."""
    std = math.sqrt(1.3 * 2.0 / fan_in)
    if weight.is_meta:  # shapes only (FLOP counting): nothing to draw
        return
    with torch.no_grad():  # redraw what falls outside 2 std, as TF's truncated_normal (20x faster than trunc_normal_)
        weight.normal_(0.0, std)
        bad = weight.abs() > 2 * std
        while bad.any():
            weight[bad] = torch.randn(int(bad.sum()), dtype=weight.dtype, device=weight.device) * std
            bad = weight.abs() > 2 * std


def _bn2d(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


# ------------------------------------------------------------------------------------------------ the module
class SeNoTModule(nn.Module):
    """Relations of each point to its k semantic neighbours in other segments; input and output (B*S, C, H, W)."""

    def __init__(self, channels: int, k: int = 4, shrink: int | None = None):
        super().__init__()
        c1, c2 = channels // 4, channels // 2
        if c1 < 1:
            raise ValueError(f"SeNoT module on {channels} channels: the relation MLP needs C/4 >= 1")
        self.k, self.shrink, self.channels = k, shrink, channels
        # first relation layer over (dt, dh, dw, x_i, x_j): one weight (C/4, 3 + 2C), used split (see the docstring)
        self.rel1 = nn.Linear(3 + 2 * channels, c1)
        self.bn1 = nn.BatchNorm1d(c1, eps=BN_EPS)
        self.rel2 = nn.Linear(c1, c2)
        self.bn2 = nn.BatchNorm1d(c2, eps=BN_EPS)
        self.proj = nn.Linear(c2, channels)  # the 1x1x1 conv_final (bias, no BN inside)
        self.bn_out = nn.BatchNorm1d(channels, eps=BN_EPS)
        for lin in (self.rel1, self.rel2, self.proj):
            msra_(lin.weight, lin.in_features)
            nn.init.zeros_(lin.bias)
        nn.init.zeros_(self.bn_out.weight)  # gamma 0: the module starts as the identity

    def forward(self, x: torch.Tensor, segments: int) -> torch.Tensor:
        bs, c, h, w = x.shape
        b = bs // segments
        small = x
        if self.shrink:
            hs, ws = h // self.shrink, w // self.shrink
            small = resize_bilinear_legacy(x, (hs, ws))
        else:
            hs, ws = h, w
        u = hs * ws
        n = segments * u
        pts = small.reshape(b, segments, c, u).transpose(2, 3).reshape(b, n, c)  # segment-major points
        idx = knn_other_segments(pts, self.k, u)  # (b, n, k)
        # normalised coordinates (s/S, h/H', w/W'), segment-major like the points
        grid = torch.stack(torch.meshgrid(torch.arange(segments, device=x.device) / segments,
                                          torch.arange(hs, device=x.device) / hs,
                                          torch.arange(ws, device=x.device) / ws, indexing="ij"), -1)
        coord = grid.reshape(n, 3).to(x.dtype)
        w_c, w_i, w_j = self.rel1.weight.split([3, c, c], dim=1)
        a = pts @ w_i.t() + self.rel1.bias  # (b, n, C/4)
        bj = pts @ w_j.t()
        flat = idx.reshape(b, n * self.k)
        gathered = bj.gather(1, flat[:, :, None].expand(-1, -1, bj.shape[-1])).view(b, n, self.k, -1)
        delta = coord[idx] - coord[None, :, None, :]  # (b, n, k, 3): neighbour minus point
        hid = a[:, :, None, :] + gathered + delta @ w_c.t()
        c1 = hid.shape[-1]
        hid = F.relu(self.bn1(hid.reshape(-1, c1)))
        hid = F.relu(self.bn2(self.rel2(hid)))
        hid = hid.view(b, n, self.k, -1).amax(dim=2)  # max over the neighbours
        out = self.bn_out(self.proj(hid.reshape(b * n, -1))).view(b, segments, u, c)
        out = out.transpose(2, 3).reshape(bs, c, hs, ws)
        if self.shrink:
            out = resize_bilinear_legacy(out, (h, w))
        return out


# ------------------------------------------------------------------------------------------------ the trunk
class Block(nn.Module):
    def __init__(self, trunk: str, c_in: int, c_out: int, stride: int, second: bool, inflated: bool,
                 module: SeNoTModule | None):
        super().__init__()
        self.trunk, self.second = trunk, second
        pre = trunk == "preact18"
        self.preact = _bn2d(c_in) if (pre and second) else None
        self.conv1 = SegmentConv(c_in, c_out, 3, stride, inflated)
        self.bn1 = _bn2d(c_out)
        self.conv2 = SegmentConv(c_out, c_out, 3, 1, inflated)
        self.bn2 = None if pre else _bn2d(c_out)
        # the original projects when the width changes, which with its widths is also where the stride is 2;
        # narrower settings with equal widths need it for the stride too
        self.shortcut = SegmentConv(c_in, c_out, 1, stride, inflated) if (c_in != c_out or stride != 1) else None
        self.bn_shortcut = _bn2d(c_out) if (self.shortcut is not None and not pre) else None
        self.bnlast = _bn2d(c_out) if (pre and second) else None
        self.senot = module

    def forward(self, x: torch.Tensor, segments: int) -> torch.Tensor:
        h = F.relu(self.preact(x)) if self.preact is not None else x
        h = F.relu(self.bn1(self.conv1(h)))
        h = self.conv2(h)
        if self.bn2 is not None:
            h = self.bn2(h)
        if self.shortcut is not None:
            x = self.shortcut(x)
            if self.bn_shortcut is not None:
                x = self.bn_shortcut(x)
        out = x + h
        if self.bnlast is not None:
            out = F.relu(self.bnlast(out))
        if self.senot is not None:
            out = out + self.senot(out, segments)
        return F.relu(out)


class SeNoTNet(nn.Module):
    def __init__(self, n_classes: int, in_channels: int = 3, trunk: str = "resnet18", widths=PAPER_WIDTHS,
                 modules: bool = True, module_groups=(1, 2), k: int = 4, shrink=(2, None), dropout: float = 0.5,
                 dims: int = 3):
        super().__init__()
        if trunk not in TRUNKS:
            raise ValueError(f"params.trunk: {trunk!r} is not one of {', '.join(TRUNKS)}")
        if len(widths) != 4:
            raise ValueError(f"params.widths: {list(widths)} must give the 4 group widths")
        if dims not in (2, 3):
            raise ValueError(f"SeNoTNet dims: {dims} is not 2 or 3")
        if len(shrink) != len(module_groups):
            raise ValueError(f"params.shrink {list(shrink)}: one entry (None or a factor) per params.module_groups "
                             f"entry {list(module_groups)}")
        self.dims = dims
        inflated = dims == 3
        shrink_of = dict(zip(module_groups, shrink))
        self.stem = SegmentConv(in_channels, widths[0], 3, 1, inflated)
        self.stem_bn = _bn2d(widths[0])
        blocks, c_in = [], widths[0]
        for g, (c, s) in enumerate(zip(widths, STRIDES)):
            for i in range(2):
                module = SeNoTModule(c, k, shrink_of[g]) if (modules and dims == 3 and g in shrink_of) else None
                blocks.append(Block(trunk, c_in, c, s if i == 0 else 1, i == 1, inflated, module))
                c_in = c
        self.blocks = nn.ModuleList(blocks)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1], n_classes)
        msra_(self.fc.weight, widths[-1])
        nn.init.zeros_(self.fc.bias)

    def senot_modules(self) -> list[SeNoTModule]:
        return [b.senot for b in self.blocks if b.senot is not None]

    @property
    def describe_note(self) -> str:
        mods = self.senot_modules()
        if not mods:
            return ""
        return (f"{sum(count_parameters(m) for m in mods):,} of the parameters in {len(mods)} SeNoT modules; "
                f"convolutions have a bias and a BatchNorm as the original's (which published no count)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dims == 3:
            if x.dim() != 5:
                raise ValueError(f"SeNoT-Net takes (batch, channels, segments, mels, frames); got {tuple(x.shape)}")
            b, c, s = x.shape[:3]
            h = x.transpose(1, 2).reshape(b * s, c, *x.shape[3:])  # segments folded into the batch
        else:
            if x.dim() != 4:
                raise ValueError(f"the 2-D SeNoT-Net trunk takes (batch, channels, mels, frames); got {tuple(x.shape)}")
            b, s, h = x.shape[0], 1, x
        # channels-last activations: the CPU convolutions of few channels run ~1.6x faster (measured on 2 cores)
        h = h.contiguous(memory_format=torch.channels_last)
        h = F.relu(self.stem_bn(self.stem(h)))
        t, bt = _same_pad(h.shape[-2], 3, 2)
        left, right = _same_pad(h.shape[-1], 3, 2)
        h = F.max_pool2d(F.pad(h, (left, right, t, bt), value=float("-inf")), 3, 2)
        for block in self.blocks:
            h = block(h, s)
        h = h.mean(dim=(2, 3)).view(b, s, -1).mean(dim=1)  # mean over segments, rows and columns
        return self.fc(self.drop(h))


MODEL_KEYS = ("trunk", "widths", "modules", "module_groups", "k", "shrink", "dropout")


def build(n_classes: int, shapes: dict, dims: int = 3, **params) -> SeNoTNet:
    """The model for one input (3, S, F, T) (dims 3) or (3, F, T) (dims 2); non-model params are ignored."""
    if "x" not in shapes or len(shapes["x"]) != (4 if dims == 3 else 3):
        want = "(channels, segments, mels, frames)" if dims == 3 else "(channels, mels, frames)"
        raise ValueError(f"SeNoT-Net ({dims}-D) takes one log-mel input {want}; got {shapes}")
    kwargs = {k: params[k] for k in MODEL_KEYS if k in params}
    if "shrink" in kwargs:
        kwargs["shrink"] = tuple(None if v in (None, 0, 1) else int(v) for v in kwargs["shrink"])
    return SeNoTNet(n_classes, shapes["x"][0], dims=dims, **kwargs)


def inflate(state: dict, source: dict | None, model: nn.Module) -> dict:
    """The system's `convert` hook: a 2-D pre-training state_dict (senot2d; `source` is its run record) mapped onto
    a 3-D SeNoT-Net: every 2-D kernel (out, in, k, k) gains a leading temporal axis of 1 (out, in, 1, k, k) where
    the model holds a 5-D kernel; the rest (BatchNorm, biases, the classifier) as it is. The SeNoT modules have no
    counterpart and stay as initialised (the original restores the pre-trained variables by name, the same)."""
    own = model.state_dict()
    out = {}
    for name, value in state.items():
        if name in own and value.dim() == 4 and own[name].dim() == 5:
            value = value.unsqueeze(2)
        out[name] = value
    return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ------------------------------------------------------------------------------------- the system's hooks
# utils/dataloader_utils/dcase_mean.py: per-channel (L, R, L-R) mean and std of the original's log-mel features.
# The std values are far below the spread of single log-mel values (they look like the spread of per-file means),
# so normalised inputs span a wide range; reproduced as they are (train.normalize: per_channel is the option)
PAPER_NORMALIZATION = {
    "dcase2019_task1a": {"mean": [-6.0472383, -5.9414253, -5.4342027], "std": [0.1388894, 0.11944761, 0.13605545]},
    "dcase2018_task1a": {"mean": [-6.2187624, -5.9934387, -5.5348587], "std": [0.13523865, 0.11576729, 0.12977712]},
}


def segment_starts(n_frames: int, segments: int, length: int, hop: int | None) -> tuple[int, int]:
    """(hop, segments) of the original's segmentation: hop = int((T - length) / (segments - 1)) unless given
    (55 for T = 469, length 80, 8 segments; the last frames beyond the 8th segment are never used)."""
    if n_frames < length:
        raise ValueError(f"params.segment_frames: {length} but the feature has {n_frames} frames")
    if hop is None:
        hop = (n_frames - length) // max(1, segments - 1)
    if hop < 1:
        raise ValueError(f"params.segments: {segments} segments of {length} frames do not fit {n_frames} frames "
                         f"with a hop of at least 1 (set params.segment_hop)")
    n = 1 + (n_frames - length) // hop
    if n < segments:
        raise ValueError(f"params.segment_hop: {hop} gives {n} segments of {length} frames in {n_frames} frames, "
                         f"fewer than params.segments = {segments}")
    return hop, n


def view(params: dict, spec, stacked: bool):
    """The segment view of a SeNoT-Net input: S segments of `segment_frames` frames, stacked into one example
    (batch, 3, S, F, T) for the 3-D network, one example per segment for the 2-D pre-training network."""
    from soundbench.features.reader import Segments

    length, segments = int(params["segment_frames"]), int(params["segments"])
    hop, n = segment_starts(spec.output_shape()[-1], segments, length, params.get("segment_hop"))
    if n != segments:
        raise ValueError(f"params.segment_hop: {hop} gives {n} segments of {length} frames in "
                         f"{spec.output_shape()[-1]} frames, not params.segments = {segments}")
    return Segments(length, hop=hop, within="clip", stack=1 if stacked else None)


def channel_swap(batch: dict, rng, params: dict) -> dict:
    """The original's augmentation: with probability 0.5 per batch (the whole batch together) swap channels 0 and
    1 (L and R). Channel 2 stays as it is, and that is exact, not a quirk to correct: it is the log-mel POWER of
    L - R, and swapping L and R turns the signal into R - L = -(L - R), whose power spectrum is the same."""
    if not params.get("channel_swap", True) or rng.random() >= 0.5:
        return batch
    x = batch["inputs"]["x"]
    order = torch.arange(x.shape[1])
    order[0], order[1] = 1, 0
    return {**batch, "inputs": {**batch["inputs"], "x": x.index_select(1, order)}}


def paper_normalization(dataset: str) -> dict:
    if dataset not in PAPER_NORMALIZATION:
        raise ValueError(f"train.normalize: paper: SeNoT-Net published constants for {', '.join(PAPER_NORMALIZATION)}"
                         f" only, not {dataset!r}; use per_channel (the training clips' statistics)")
    return PAPER_NORMALIZATION[dataset]


def input_shapes(params: dict, stacked: bool) -> dict:
    """The paper input: 8 segments x 128 mel bands x 80 frames (3 channels)."""
    s, t = int(params.get("segments", 8)), int(params.get("segment_frames", 80))
    return {"x": (3, s, 128, t) if stacked else (3, 128, t)}
