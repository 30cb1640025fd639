"""Weakly-supervised sound event detection with a cosine-similarity penalty (Pellegrini & Cances, IJCNN 2019;
topel/ijcnn19_submission, notebook `ijcnn2019-sed-cosine.ipynb`; facts: ../shared/reference/seed-specs.md §4).

Two passes on 64 log-mel bands x T frames (T = 431 per 10-s clip), input (batch, 1, mels, frames):

  ATCNN   pass 1, audio tagging: 3 blocks [conv 3x3 same -> BN -> ReLU -> max-pool -> spatial dropout 0.2] of
          64 / 128 / 256 filters, pools (4, 2), (4, 1), (4, 1) (mel, time); global average || global max pooling ->
          dense 1024 ReLU -> dropout 0.5 -> dense 10; clip logits (batch, classes). 906,122 parameters.
  CRNN    pass 2, frame-level detection. ReLU version ("MIL"): 3 blocks [conv 64 3x3 -> BN -> ReLU -> max-pool (4, 1)
          -> dropout 0.1]. GLU version ("GLU-MIL", glu=True): 3 blocks [conv 128 3x3 without bias -> BN -> GLU (the
          first half of the channels times the sigmoid of the second half) -> max-pool (4, 1)], no dropout. Then the
          64 channels x frames -> bidirectional GRU 64 (dropout 0.1, recurrent dropout 0.1) -> (ReLU version:
          dropout 0.1) -> time-distributed dense 64 ReLU -> (dropout 0.1) -> time-distributed dense 10; frame
          logits (batch, frames, classes). Pooling only over the mel axis keeps every frame.

The losses (a system's `loss` hook, soundbench/systems.py):
  mil_loss   binary cross-entropy between the weak labels and the maximum over frames of the frame probabilities,
             averaged over classes, then over the batch, plus alpha x the cosine penalty (alpha = 0.1 hard-coded in
             the notebook's MIL_loss; 0 = no penalty)
  cosine     for a clip with labels y and frame probabilities P (T x C): p_c = y_c P[:, c]; per class
             pen_c = sum_c' cos(p_c, p_c') - y_c (a zero curve has cosine 0 with everything, as scikit-learn's
             cosine_similarity; -y_c removes a positive class's self-similarity of 1)

Faithful to Keras 2.2 (the notebook's framework) by default, each departure a named option:
  gru="keras"   Keras' GRU (reset gate applied before the recurrent product, one bias vector per gate, hard-sigmoid
                gates, input and recurrent dropout masks fixed over the sequence, one per gate): the notebook's
                207,818 trainable parameters. gru="torch" uses torch.nn.GRU (cuDNN-style: reset gate after the
                product, two bias vectors per gate, so 384 more parameters, 208,202; sigmoid gates; the input dropout
                as one mask per sequence, no recurrent dropout); much faster on the CPU.
  init="keras"  Glorot-uniform kernels, zero biases, orthogonal recurrent kernels; init="torch": PyTorch's defaults.
  BatchNorm     Keras' epsilon 1e-3 and moving-average decay 0.99 (PyTorch momentum 0.01).
  bce="keras"   the probabilities are clipped to [1e-7, 1 - 1e-7] before the log (Keras' binary_crossentropy: no
                gradient once the maximum saturates); bce="logits": BCE computed on the logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KERAS_EPSILON = 1e-7  # keras.backend.epsilon()
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # Keras BatchNormalization: epsilon 1e-3, momentum (decay) 0.99

# Table I of the paper (results_dcase18_task4.png in the original repository): global macro event-based F-score (%)
# on the DCASE 2018 Task 4 test set, its std over several trained models, and the class-wise F-scores (%).
# "1-best": the best of those models.
TABLE_I_CLASSES = ("Alarm_bell_ringing", "Blender", "Cat", "Dishes", "Dog", "Electric_shaver_toothbrush", "Frying",
                   "Running_water", "Speech", "Vacuum_cleaner")
TABLE_I = {  # column: (F, std, class-wise F in TABLE_I_CLASSES order)
    "FSL": (15.27, None, (2.5, 10.7, 3.3, 0.0, 2.4, 40.9, 30.6, 8.2, 0.0, 54.3)),
    "ATT": (16.80, None, (15.8, 14.0, 3.2, 18.0, 9.9, 13.5, 14.9, 14.7, 36.0, 28.0)),
    "MIL": (28.90, 1.95, (32.9, 20.6, 49.3, 0.0, 16.4, 27.8, 27.8, 14.9, 36.6, 62.7)),
    "GLU-MIL": (30.15, 0.79, (34.6, 20.7, 45.6, 0.0, 27.4, 30.9, 34.1, 13.1, 35.8, 59.2)),
    "+cos": (31.50, 1.83, (32.8, 27.4, 47.3, 4.1, 28.6, 37.8, 27.0, 13.7, 37.0, 59.3)),
    "+cos (1-best)": (34.75, None, (38.4, 26.4, 53.2, 16.0, 26.7, 41.7, 31.2, 15.4, 38.4, 60.3)),
    "+AT oracle": (37.93, 2.36, (36.2, 49.7, 47.3, 6.1, 31.8, 37.7, 40.8, 20.9, 36.8, 72.0)),
    "+AT oracle (1-best)": (42.39, None, (43.3, 49.5, 54.4, 25.1, 29.4, 41.9, 45.9, 22.5, 38.4, 73.4)),
}


def table_i_paper(column: str) -> dict[str, float]:
    """The Table I column as an experiment's `paper:` mapping (fractions, as the metrics): f1_event_macro and
    f1_event/<class>."""
    f, _, per_class = TABLE_I[column]
    return {"f1_event_macro": round(f / 100, 4),
            **{f"f1_event/{c}": round(v / 100, 4) for c, v in zip(TABLE_I_CLASSES, per_class)}}


def _keras_init(module: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases (Keras' Conv2D and Dense defaults); BN keeps gamma 1, beta 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def _check_init(init: str) -> None:
    if init not in ("keras", "torch"):
        raise ValueError(f"params.init: {init!r} is not keras or torch")


# --------------------------------------------------------------------------------------------- pass 1: tagging

class ATCNN(nn.Module):
    """The notebook's audio-tagging CNN: clip logits from (batch, 1, mels, frames)."""

    def __init__(self, n_classes: int, widths=(64, 128, 256), pools=((4, 2), (4, 1), (4, 1)), dense: int = 1024,
                 spatial_dropout: float = 0.2, dropout: float = 0.5, init: str = "keras"):
        super().__init__()
        _check_init(init)
        if len(widths) != len(pools):
            raise ValueError(f"params: {len(widths)} widths for {len(pools)} pools")
        blocks, c_in = [], 1
        for width, pool in zip(widths, pools):
            blocks.append(nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1), _bn(width), nn.ReLU(),
                                        nn.MaxPool2d(tuple(pool)), nn.Dropout2d(spatial_dropout)))
            c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.dense = nn.Linear(2 * c_in, dense)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dense, n_classes)
        if init == "keras":
            _keras_init(self)

    def forward(self, x):
        h = self.blocks(x)
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)  # GAP || GMP
        return self.out(self.dropout(F.relu(self.dense(pooled))))


# --------------------------------------------------------------------------------------------- pass 2: the CRNN

def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras' hard sigmoid: clip(0.2 x + 0.5, 0, 1)."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


class KerasBiGRU(nn.Module):
    """Bidirectional Keras-2 GRU (reset_after=False, hard-sigmoid gates), return_sequences, outputs concatenated
    [forward, backward]; both directions run in one loop over time (batched matrix products).

    Keras' cell, per direction: with x_g = (x * m_g) W_g + b_g and masks m_g (input dropout) and n_g (recurrent
    dropout), one per gate g in (z, r, h), drawn once per sequence,
        z = hsig(x_z + (h n_z) U_z),  r = hsig(x_r + (h n_r) U_r),  h~ = tanh(x_h + (r * h n_h) U_h),
        h' = z * h + (1 - z) * h~.
    Parameters per direction: kernel (in, 3H), recurrent kernel (H, 3H), bias (3H), gates in the order z, r, h.
    """

    def __init__(self, input_size: int, hidden: int, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 init: str = "keras"):
        super().__init__()
        self.hidden, self.dropout, self.recurrent_dropout = hidden, dropout, recurrent_dropout
        self.kernel = nn.Parameter(torch.empty(2, input_size, 3 * hidden))
        self.recurrent_kernel = nn.Parameter(torch.empty(2, hidden, 3 * hidden))
        self.bias = nn.Parameter(torch.zeros(2, 3 * hidden))
        for d in range(2):
            if init == "keras":
                nn.init.xavier_uniform_(self.kernel.data[d])
                nn.init.orthogonal_(self.recurrent_kernel.data[d])
            else:  # torch.nn.GRU's uniform(-1/sqrt(H), 1/sqrt(H)) for everything
                for p in (self.kernel, self.recurrent_kernel, self.bias):
                    nn.init.uniform_(p.data[d], -hidden ** -0.5, hidden ** -0.5)

    def _masks(self, rate: float, shape, like: torch.Tensor):
        if not self.training or rate <= 0:
            return None
        keep = torch.rand(shape, device=like.device, dtype=like.dtype) >= rate
        return keep.to(like.dtype) / (1.0 - rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, T, 2H)
        b, t, f = x.shape
        hidden = self.hidden
        seq = torch.stack([x, x.flip(1)])  # (2, B, T, F): the backward direction reads the reversed sequence
        w = self.kernel.view(2, f, 3, hidden)
        in_masks = self._masks(self.dropout, (2, 3, b, 1, f), x)
        if in_masks is None:
            proj = torch.einsum("dbtf,dfgh->dgbth", seq, w)
        else:
            proj = torch.einsum("dgbtf,dfgh->dgbth", seq.unsqueeze(1) * in_masks, w)
        proj = proj + self.bias.view(2, 3, 1, 1, hidden)
        xz, xr, xh = proj.unbind(1)  # each (2, B, T, H)
        u = self.recurrent_kernel
        u_zr, u_h = u[:, :, :2 * hidden], u[:, :, 2 * hidden:]
        rec_masks = self._masks(self.recurrent_dropout, (3, 2, b, hidden), x)
        h = x.new_zeros(2, b, hidden)
        outputs = []
        for step in range(t):
            if rec_masks is None:
                zr = torch.bmm(h, u_zr)
                h_h = h
            else:
                zr = torch.cat([torch.bmm(h * rec_masks[0], u_zr[..., :hidden]),
                                torch.bmm(h * rec_masks[1], u_zr[..., hidden:])], dim=-1)
                h_h = h * rec_masks[2]
            z = hard_sigmoid(xz[:, :, step] + zr[..., :hidden])
            r = hard_sigmoid(xr[:, :, step] + zr[..., hidden:])
            candidate = torch.tanh(xh[:, :, step] + torch.bmm(r * h_h, u_h))
            h = z * h + (1.0 - z) * candidate
            outputs.append(h)
        out = torch.stack(outputs, dim=2)  # (2, B, T, H)
        return torch.cat([out[0], out[1].flip(1)], dim=-1)


class TorchBiGRU(nn.Module):
    """torch.nn.GRU, bidirectional, with Keras' input dropout as one mask per sequence (no recurrent dropout)."""

    def __init__(self, input_size: int, hidden: int, dropout: float = 0.0, init: str = "keras"):
        super().__init__()
        self.gru = nn.GRU(input_size, hidden, batch_first=True, bidirectional=True)
        self.dropout = dropout
        if init == "keras":
            for name, p in self.gru.named_parameters():
                if name.startswith("weight_ih"):
                    for g in p.data.chunk(3, 0):
                        nn.init.xavier_uniform_(g)
                elif name.startswith("weight_hh"):  # Keras' orthogonal (H, 3H) recurrent kernel, transposed
                    u = torch.empty(hidden, 3 * hidden)
                    nn.init.orthogonal_(u)
                    p.data.copy_(u.t())
                else:
                    nn.init.zeros_(p)

    def forward(self, x):
        if self.training and self.dropout > 0:
            keep = torch.rand(x.shape[0], 1, x.shape[2], device=x.device, dtype=x.dtype) >= self.dropout
            x = x * keep.to(x.dtype) / (1.0 - self.dropout)
        return self.gru(x)[0]


class GLU(nn.Module):
    """The first half of the channels, linear, times the sigmoid of the second half."""

    def forward(self, x):
        a, gate = x.chunk(2, dim=1)
        return a * torch.sigmoid(gate)


class CRNN(nn.Module):
    """Frame-level logits (batch, frames, classes) from (batch, 1, mels, frames); mels must pool to 1 (64-127)."""

    def __init__(self, n_classes: int, n_mels: int = 64, glu: bool = True, channels: int = 64, blocks: int = 3,
                 pool: int = 4, gru_units: int = 64, dense_units: int = 64, dropout: float = 0.1,
                 gru_dropout: float = 0.1, recurrent_dropout: float = 0.1, gru: str = "keras", init: str = "keras"):
        super().__init__()
        _check_init(init)
        left = n_mels
        for _ in range(blocks):
            left //= pool
        if left != 1:
            raise ValueError(f"the CRNN pools the {n_mels} mel bands by {pool} in each of {blocks} blocks to {left} "
                             f"rows; it needs exactly 1 (the paper's 64 bands: n_mels from {pool ** blocks} to "
                             f"{pool ** (blocks + 1) - 1})")
        self.glu = bool(glu)
        layers, c_in = [], 1
        for _ in range(blocks):
            if self.glu:  # notebook "block": conv 2*channels, no bias -> BN -> GLU -> pool; no dropout
                layers += [nn.Conv2d(c_in, 2 * channels, 3, padding=1, bias=False), _bn(2 * channels), GLU(),
                           nn.MaxPool2d((pool, 1))]
            else:
                layers += [nn.Conv2d(c_in, channels, 3, padding=1), _bn(channels), nn.ReLU(), nn.MaxPool2d((pool, 1)),
                           nn.Dropout(dropout)]
            c_in = channels
        self.trunk = nn.Sequential(*layers)
        if gru == "keras":
            self.rnn = KerasBiGRU(channels, gru_units, gru_dropout, recurrent_dropout, init)
        elif gru == "torch":
            self.rnn = TorchBiGRU(channels, gru_units, gru_dropout, init)
        else:
            raise ValueError(f"params.gru: {gru!r} is not keras or torch")
        self.gru_kind = gru
        # the ReLU version has dropout after the GRU and after the dense layer; the GLU version has none
        self.drop = nn.Dropout(0.0 if self.glu else dropout)
        self.dense = nn.Linear(2 * gru_units, dense_units)
        self.out = nn.Linear(dense_units, n_classes)
        if init == "keras":
            _keras_init(self.trunk)
            _keras_init(self.dense)
            _keras_init(self.out)

    @property
    def describe_note(self) -> str:
        """What `soundbench describe-model` adds to the parameter count."""
        if self.gru_kind == "keras":
            return ("Keras-2 GRU (reset_after=False): one bias vector per gate, as the notebook; the GLU model counts "
                    "207,818 trainable parameters there (208,586 with BatchNorm's moving statistics)")
        return ("torch.nn.GRU: two bias vectors per gate (input and recurrent), 2 x 3 x 64 = 384 more than Keras' GRU "
                "(the GLU model: 208,202 here vs the notebook's 207,818)")

    def forward(self, x):
        h = self.trunk(x)  # (B, channels, 1, T)
        h = h.squeeze(2).transpose(1, 2)  # (B, T, channels)
        h = self.drop(self.rnn(h))
        h = self.drop(F.relu(self.dense(h)))
        return self.out(h)


# --------------------------------------------------------------------------------------------- losses

def cosine_penalty(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """pen (batch, classes): pen_c = sum_c' cos(y_c P[:, c], y_c' P[:, c']) - y_c for frame probabilities
    probs (batch, frames, classes) and tags y (batch, classes).

    The L2 norm over time is guarded by Keras' epsilon, sqrt(max(sum p^2, eps^2)): a zero curve (a negative class)
    has norm eps and cosine 0 with everything, as scikit-learn's cosine_similarity (which the notebook checks its
    Keras version against), and no NaN gradient.
    """
    p = probs * y[:, None, :]
    norm = p.pow(2).sum(dim=1).clamp_min(KERAS_EPSILON ** 2).sqrt()  # (B, C)
    cos = torch.bmm(p.transpose(1, 2), p) / (norm[:, :, None] * norm[:, None, :])  # (B, C, C)
    return cos.sum(dim=-1) - y


def mil_loss(logits: torch.Tensor, y: torch.Tensor, alpha: float = 0.1, bce: str = "keras") -> torch.Tensor:
    """The notebook's MIL_loss: BCE(y, max over frames of the probabilities) + alpha * cosine penalty, both
    (batch, classes), averaged over classes then batch (Keras' loss reduction)."""
    if bce == "keras":
        p = torch.sigmoid(logits.amax(dim=1)).clamp(KERAS_EPSILON, 1.0 - KERAS_EPSILON)
        loss = -(y * torch.log(p) + (1.0 - y) * torch.log(1.0 - p))
    elif bce == "logits":
        loss = F.binary_cross_entropy_with_logits(logits.amax(dim=1), y, reduction="none")
    else:
        raise ValueError(f"params.bce: {bce!r} is not keras or logits")
    if alpha:
        loss = loss + alpha * cosine_penalty(torch.sigmoid(logits), y)
    return loss.mean()


def at_loss(logits: torch.Tensor, y: torch.Tensor, bce: str = "keras") -> torch.Tensor:
    """Keras' binary_crossentropy on the sigmoid outputs of the tagging CNN (clipped as Keras does)."""
    if bce == "keras":
        p = torch.sigmoid(logits).clamp(KERAS_EPSILON, 1.0 - KERAS_EPSILON)
        return (-(y * torch.log(p) + (1.0 - y) * torch.log(1.0 - p))).mean()
    if bce == "logits":
        return F.binary_cross_entropy_with_logits(logits, y)
    raise ValueError(f"params.bce: {bce!r} is not keras or logits")
