"""A small log-mel CNN: the backbone's reference neural system (not a published one).

Conv blocks (conv 3x3, BN, ReLU, max-pool 2x2) then global average + max pooling over frequency and time and a
linear layer. Input (batch, channels, mels, frames); output logits (batch, n_classes).
"""
from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, n_classes: int, in_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64),
                 dropout: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2, ceil_mode=True)]
            c = w
        self.trunk = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * c, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)
        # average pooling sees the texture, max pooling the strongest event: both matter for short events
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.fc(self.dropout(pooled))
