"""Self-supervised audio representations from acoustic images (Sanguineti et al., ECCV 2020; seed-specs section 5).

A port of IIT-PAVIS/acoustic-images-self-supervision (TensorFlow slim) for ACIVW's three modalities, stored as
named inputs: `audio` (the HearNet STFT, (1, 257, 200)), `aimage` (acoustic images (T, 36, 48, 12)) and `video`
(uint8 frames (F, H, W, 3), the original's 2 frames of 224 x 298).

Networks (section 5.4):
  HearNet      the 257 frequency bins as channels, 1-D convs over time: 128 [11] -> pool 5 -> 256 [5] -> pool 5 ->
               256 [3] -> pool 5 -> 1024 [1] -> 1024 [1] -> 1000 [1] ReLU -> 128 [1] (linear in embedding mode;
               ReLU then fc3 to the classes in supervised mode); SAME convs, VALID pools (200 -> 40 -> 8 -> 1
               frames; the mean over what is left serves shorter inputs).
  DualCamNet   per 12-frame group a temporal 3-D conv 7x1x1 (12 -> 12 channels, SAME) + ReLU, then per frame
               5x5 conv 32 ReLU -> max-pool 3/3 VALID (36 x 48 -> 12 x 16) -> 5x5 conv 128 ReLU: a 12 x 16 x 128
               map per frame; truncated-normal init (std 0.01), zero biases. Supervised: the spatial sum of the
               map -> FC to the classes per frame, logits averaged over the frames.
  ResNet18 video trunk  slim resnet_v1 with basic units (3x3 conv stride s + BN + ReLU, 3x3 conv + BN, shortcut
               = subsampling or a strided 1x1 conv + BN, ReLU after the sum): root 7x7/2 64 -> max-pool 3/2,
               blocks 1-3 of 2 units (64, 128, 256; the first unit of blocks 2 and 3 strides 2 in its first
               conv, as the repository's resnet_v1_block), no block 4, then conv_map 3x4 VALID 128 + BN + ReLU: a
               12 x 16 x 128 map for 224 x 298 frames. The per-channel means (123.68, 116.78, 103.94) are
               subtracted in stored channel order (the original stores OpenCV's BGR and subtracts the RGB means
               in that order). Supervised: global average pool -> 1x1 logits per frame, averaged over frames.

Audio-visual matching (trainer_three.py), for audio maps A_i and video maps V_j (means over frames):
  v_ij = L2norm(sum_hw A_i * V_j * V_j), a_i = L2norm(sum_hw A_i), d_ij = |v_ij - a_i|^2
  (HearNet's A_i: its 128-d output tiled over the map and ReLU'd). Positives of anchor i: same class and same
  video (i itself included); negatives: another class or another video. Triplet loss with margin 0.2: the mean
  over the valid triplets with positive loss ("batch all") up to epoch `hard_from` - 1, then per anchor the
  hardest positive against the hardest negative ("batch hard"), from epoch 4 as the original's `epoch > 3`.
Distillation (trainer_audio.py): (1 - alpha) * triplet(d) + alpha * triplet between the L2-normalised HearNet
  output and the L2-normalised spatial sum of the frozen DualCamNet teacher's map, the same triplet schedule.
Every loss adds the slim L2 penalty l2 * sum(w^2) / 2 over the conv and dense weights of HearNet and the ResNet
(weight decay 5e-4; DualCamNet's layers are outside slim's regularised scope).

Departures, as options with the original as default: `widths` (the trunk's channels; demo: narrower),
`dualcam_width` (DualCamNet's conv2 channels, 32; demo: narrower), `hearnet_widths` (HearNet's conv1-5 and
fc1 widths; demo: narrower; the 128-d output stays),
`video_map_size` (resize the video map bilinearly to this size; the demo's small frames give a smaller map than
the acoustic images' 12 x 16).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VIDEO_MEAN = (123.68, 116.78, 103.94)  # subtracted from the stored channels in order (ACIVW: B, G, R stored)
FRAMES_PER_GROUP = 12  # DualCamNet's temporal conv runs within groups of 12 frames (num_frames)
EMBEDDING_DIM = 128
MARGIN = 0.2
HARD_FROM = 4  # batch-hard from epoch 4 (the original's `epoch > 3`)


def _single(inputs: dict) -> torch.Tensor:
    if len(inputs) != 1:
        raise ValueError(f"this network takes one input, got {sorted(inputs)}")
    return next(iter(inputs.values()))


HEARNET_WIDTHS = (128, 256, 256, 1024, 1024, 1000)  # conv1-5 and the shared head's first layer


class HearNet(nn.Module):
    def __init__(self, n_bins: int = 257, n_classes: int | None = None, widths=HEARNET_WIDTHS):
        super().__init__()
        w1, w2, w3, w4, w5, w6 = (int(w) for w in widths)
        self.convs = nn.ModuleList([nn.Conv1d(n_bins, w1, 11, padding="same"), nn.Conv1d(w1, w2, 5, padding="same"),
                                    nn.Conv1d(w2, w3, 3, padding="same")])
        self.conv4, self.conv5 = nn.Conv1d(w3, w4, 1), nn.Conv1d(w4, w5, 1)
        self.fc1, self.fc2 = nn.Linear(w5, w6), nn.Linear(w6, EMBEDDING_DIM)
        self.fc3 = nn.Linear(EMBEDDING_DIM, n_classes) if n_classes else None
        for m in self.modules():  # slim's defaults: Glorot-uniform weights, zero biases
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, bins, T) spectrogram -> the 128-d output (linear)."""
        x = x.flatten(1, 2) if x.dim() == 4 else x  # bins as channels
        for conv in self.convs:
            x = F.max_pool1d(F.relu(conv(x)), 5, 5, ceil_mode=False) if x.shape[-1] >= 5 else F.relu(conv(x))
        x = F.relu(self.conv5(F.relu(self.conv4(x)))).mean(-1)
        return self.fc2(F.relu(self.fc1(x)))

    def forward(self, **inputs):
        e = self.embed(_single(inputs))
        if self.fc3 is None:
            return {"embedding": e}
        return self.fc3(F.relu(e))


class DualCamNet(nn.Module):
    def __init__(self, channels: int = 12, n_classes: int | None = None, width: int = 32):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, (7, 1, 1), padding=(3, 0, 0))
        self.conv2 = nn.Conv2d(channels, width, 5, padding=2)
        self.conv3 = nn.Conv2d(width, EMBEDDING_DIM, 5, padding=2)
        self.fc = nn.Linear(EMBEDDING_DIM, n_classes) if n_classes else None
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.01, a=-0.02, b=0.02)
                nn.init.zeros_(m.bias)

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, C) acoustic images -> (B, T, 128, H/3, W/3) maps."""
        b, t, h, w, c = x.shape
        g = min(FRAMES_PER_GROUP, t)
        if t % g:
            raise ValueError(f"DualCamNet: {t} frames are not whole groups of {g}")
        z = x.reshape(b * t // g, g, h, w, c).permute(0, 4, 1, 2, 3)  # (groups, C, g, H, W)
        z = F.relu(self.conv1(z)).permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        z = F.max_pool2d(F.relu(self.conv2(z)), 3, 3)
        z = F.relu(self.conv3(z))
        return z.reshape(b, t, *z.shape[1:])

    def forward(self, **inputs):
        m = self.maps(_single(inputs).float())
        if self.fc is None:
            return {"embedding": m.sum((-1, -2)).mean(1), "map": m.mean(1)}
        return self.fc(m.sum((-1, -2))).mean(1)  # logits per frame, averaged over the frames


class BasicUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.short = None if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                            nn.BatchNorm2d(cout))
        self.stride = stride

    def forward(self, x):
        s = self.short(x) if self.short is not None else x[:, :, ::self.stride, ::self.stride]
        r = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(s + r)


class ResNet18Video(nn.Module):
    """The ResNet18_v1 trunk without block 4 plus conv_map; frames (B, F, H, W, 3) uint8 -> maps (B, F, 128, h, w)."""

    def __init__(self, widths=(64, 128, 256), n_classes: int | None = None, video_map_size=None):
        super().__init__()
        w0, w1, w2 = (int(w) for w in widths)
        self.root = nn.Sequential(nn.Conv2d(3, w0, 7, 2, 3, bias=False), nn.BatchNorm2d(w0), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        self.blocks = nn.Sequential(BasicUnit(w0, w0, 1), BasicUnit(w0, w0, 1), BasicUnit(w0, w1, 2),
                                    BasicUnit(w1, w1, 1), BasicUnit(w1, w2, 2), BasicUnit(w2, w2, 1))
        self.conv_map = nn.Sequential(nn.Conv2d(w2, EMBEDDING_DIM, (3, 4), bias=False),
                                      nn.BatchNorm2d(EMBEDDING_DIM), nn.ReLU())
        self.logits = nn.Conv2d(EMBEDDING_DIM, n_classes, 1) if n_classes else None
        self.video_map_size = tuple(video_map_size) if video_map_size else None
        self.register_buffer("mean", torch.tensor(VIDEO_MEAN).view(1, 3, 1, 1), persistent=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def maps(self, v: torch.Tensor) -> torch.Tensor:
        b, f = v.shape[:2]
        x = v.reshape(b * f, *v.shape[2:]).permute(0, 3, 1, 2).float() - self.mean
        m = self.conv_map(self.blocks(self.root(x)))
        if self.video_map_size is not None and tuple(m.shape[-2:]) != self.video_map_size:
            m = F.interpolate(m, size=self.video_map_size, mode="bilinear", align_corners=False)
        return m.reshape(b, f, *m.shape[1:])

    def forward(self, **inputs):
        m = self.maps(_single(inputs))
        if self.logits is None:
            mean = m.mean(1)
            return {"embedding": mean.flatten(1), "map": mean}
        return self.logits(m.flatten(0, 1).mean((-1, -2), keepdim=True)).flatten(1).reshape(
            m.shape[0], m.shape[1], -1).mean(1)


def matching_distances(a_map: torch.Tensor, v_map: torch.Tensor) -> torch.Tensor:
    """d_ij = |L2norm(sum_hw A_i V_j V_j) - L2norm(sum_hw A_i)|^2 for maps (B, C, h, w) -> (B_a, B_v)."""
    v = F.normalize(torch.einsum("ichw,jchw->ijc", a_map, v_map * v_map), dim=-1)
    a = F.normalize(a_map.sum((-1, -2)), dim=-1)[:, None, :]
    return ((v - a) ** 2).sum(-1)


def audio_map(embedding: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """HearNet's 128-d output tiled over the video map's grid, ReLU'd (the original's A_i)."""
    return F.relu(embedding)[:, :, None, None].expand(-1, -1, *like.shape[-2:])


def masks(y: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) masks (B, B): same class and video / another class or video."""
    same = (y[:, None] == y[None, :]) & (video[:, None] == video[None, :])
    return same, ~same


def triplet_loss(d: torch.Tensor, y: torch.Tensor, video: torch.Tensor, epoch: int, margin: float = MARGIN,
                 hard_from: int = HARD_FROM) -> torch.Tensor:
    """Triplet loss on a distance matrix d (anchors x candidates): batch all before `hard_from`, then batch hard."""
    pos, neg = masks(y, video)
    if epoch < hard_from:
        t = (d[:, :, None] - d[:, None, :] + margin) * (pos[:, :, None] & neg[:, None, :])
        t = F.relu(t)
        return t.sum() / ((t > 1e-16).sum() + 1e-16)
    hardest_pos = (d * pos).amax(1)
    hardest_neg = (d + d.amax(1, keepdim=True) * (~neg)).amin(1)
    return F.relu(hardest_pos - hardest_neg + margin).mean()


def l2_penalty(model: nn.Module) -> torch.Tensor:
    """slim's l2_regularizer: sum(w^2) / 2 over the trainable conv and dense weights."""
    # DualCamNet is built from the repository's own layer helpers, outside slim's regularised arg_scope
    skip = {id(m) for d in model.modules() if isinstance(d, DualCamNet) for m in d.modules()}
    ws = [m.weight for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))
          and m.weight.requires_grad and id(m) not in skip]
    return sum((w ** 2).sum() for w in ws) / 2


def pairwise_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


class AudioVisual(nn.Module):
    """Self-supervised pair: an audio-side net (HearNet on `audio` or DualCamNet on `aimage`) and the video trunk.

    Outputs: {<side>: the side's kNN embedding (128), "video": the flattened mean video map, "side_map": the side's
    map for the matching, "video_map"}."""

    def __init__(self, side: str, shapes: dict, widths=(64, 128, 256), video_map_size=None, dualcam_width=32,
                 hearnet_widths=HEARNET_WIDTHS):
        super().__init__()
        if side not in ("audio", "aimage") or side not in shapes or "video" not in shapes:
            raise ValueError(f"the {side}-video model needs inputs {side!r} and 'video', got {sorted(shapes)}")
        self.side = side
        self.net = HearNet(shapes["audio"][-2], widths=hearnet_widths) if side == "audio" \
            else DualCamNet(shapes["aimage"][-1], width=dualcam_width)
        self.video = ResNet18Video(widths, video_map_size=video_map_size)

    def forward(self, **inputs):
        s = self.net(**{self.side: inputs[self.side]})
        v = self.video(video=inputs["video"])
        out = {self.side: s["embedding"], "video": v["embedding"], "video_map": v["map"]}
        out["side_map"] = s["map"] if "map" in s else audio_map(s["embedding"], v["map"])
        if out["side_map"].shape[-2:] != v["map"].shape[-2:]:
            raise ValueError(f"the {self.side} map {tuple(out['side_map'].shape[-2:])} and the video map "
                             f"{tuple(v['map'].shape[-2:])} differ in size (params.video_map_size)")
        return out


def _video_ids(batch: dict) -> torch.Tensor:
    if "group" not in batch:
        raise ValueError("the triplet loss needs the video of each example (the embedding task's `group`)")
    return batch["group"]


def ssl_loss(outputs: dict, batch: dict, ctx) -> torch.Tensor:
    p = ctx.params
    d = matching_distances(outputs["side_map"], outputs["video_map"])
    loss = triplet_loss(d, batch["y"], _video_ids(batch), ctx.epoch, float(p["margin"]), int(p["hard_from"]))
    return loss + float(p["l2"]) * l2_penalty(ctx.model)


def distill_loss(outputs: dict, batch: dict, ctx) -> torch.Tensor:
    """(1 - alpha) * triplet(audio, video) + alpha * triplet(audio, the frozen teacher's acoustic image)."""
    p = ctx.params
    if ctx.teacher is None:
        raise ValueError("the distillation system needs a `teacher:` experiment (a ssl_aimage_video run)")
    if "aimage" not in batch["inputs"]:
        raise ValueError("the distillation system needs the acoustic images as the input named 'aimage'")
    alpha, margin, hard = float(p["alpha"]), float(p["margin"]), int(p["hard_from"])
    y, video = batch["y"], _video_ids(batch)
    av = triplet_loss(matching_distances(outputs["side_map"], outputs["video_map"]), y, video, ctx.epoch, margin,
                      hard)
    with torch.no_grad():
        teacher = F.normalize(ctx.teacher.net(aimage=batch["inputs"]["aimage"])["embedding"], dim=1)
    student = F.normalize(outputs["audio"], dim=1)
    ai = triplet_loss(pairwise_sq(student, teacher), y, video, ctx.epoch, margin, hard)
    return (1 - alpha) * av + alpha * ai + float(p["l2"]) * l2_penalty(ctx.model)


def supervised_loss(outputs: dict, batch: dict, ctx) -> torch.Tensor:
    return F.cross_entropy(outputs[ctx.predict_key], batch["y"]) + float(ctx.params["l2"]) * l2_penalty(ctx.model)


def retrieval_distance(query: str, q: torch.Tensor, gallery: str, g: torch.Tensor, params: dict) -> torch.Tensor:
    """The matching distance d between HearNet outputs (queries or gallery) and flattened video maps
    (C x h x w): with a tiled audio map, sum_hw A_i V_j^2 = relu(a_i) * sum_hw V_j^2."""
    if {query, gallery} != {"audio", "video"}:
        raise ValueError(f"no matching distance between {query!r} and {gallery!r}")
    a, v = (q, g) if query == "audio" else (g, q)
    r = F.relu(a)
    s = (v.reshape(len(v), EMBEDDING_DIM, -1) ** 2).sum(-1)  # (n_v, 128)
    d = ((F.normalize(r[:, None, :] * s[None], dim=-1) - F.normalize(r, dim=-1)[:, None, :]) ** 2).sum(-1)
    return d if query == "audio" else d.T


LOSS_KEYS = ("l2", "margin", "hard_from", "alpha")  # params the losses read, not the networks
SHAPES = {"audio": (1, 257, 200), "aimage": (24, 36, 48, 12), "video": (2, 224, 298, 3)}  # the paper's inputs


def build(kind: str, n_classes: int, shapes: dict, **params) -> nn.Module:
    """kind: hearnet | dualcamnet | resnet18_video (supervised, one input of any name) or ssl_audio_video |
    ssl_aimage_video | distill_audio (embedding mode, named inputs audio / aimage and video)."""
    p = {k: v for k, v in params.items() if k not in LOSS_KEYS}
    widths, map_size = p.get("widths", (64, 128, 256)), p.get("video_map_size")
    if kind in ("hearnet", "dualcamnet", "resnet18_video"):
        if len(shapes) != 1:
            raise ValueError(f"{kind} takes one input, got {sorted(shapes)}")
        shape = next(iter(shapes.values()))
        if kind == "hearnet":
            return HearNet(shape[-2], n_classes, p.get("hearnet_widths", HEARNET_WIDTHS))
        if kind == "dualcamnet":
            return DualCamNet(shape[-1], n_classes, int(p.get("dualcam_width", 32)))
        return ResNet18Video(widths, n_classes)
    side = {"ssl_audio_video": "audio", "ssl_aimage_video": "aimage", "distill_audio": "audio"}[kind]
    return AudioVisual(side, shapes, widths, map_size, int(p.get("dualcam_width", 32)),
                       p.get("hearnet_widths", HEARNET_WIDTHS))


def input_shapes(kind: str, params: dict) -> dict:
    if kind in ("hearnet", "dualcamnet", "resnet18_video"):
        return {"x": SHAPES[{"hearnet": "audio", "dualcamnet": "aimage", "resnet18_video": "video"}[kind]]}
    names = {"ssl_audio_video": ("audio", "video"), "ssl_aimage_video": ("aimage", "video"),
             "distill_audio": ("audio", "video", "aimage")}[kind]
    return {n: SHAPES[n] for n in names}
