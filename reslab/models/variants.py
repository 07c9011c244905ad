"""The residual-unit variants of He et al. 2016 (Fig. 4 / Table 2), for the pre-activation ablation.

    original        y = relu(x + BN(conv(relu(BN(conv(x))))))          (= BasicBlock / Bottleneck)
    bn_after_add    y = relu(BN(x + conv(relu(BN(conv(x))))))
    relu_before_add y = x + relu(BN(conv(relu(BN(conv(x))))))
    relu_preact     y = x + BN(conv(relu(BN(conv(relu(x))))))
    full_preact     y = x + conv(relu(BN(conv(relu(BN(x))))))          (= PreActBasicBlock / PreActBottleneck)

(shown for the basic unit; the bottleneck has three convolutions the same way). Only the three middle
variants live here; "original" and "full_preact" are the standard blocks.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import _Unit
from .layers import conv1x1, conv3x3

UNITS = ("original", "bn_after_add", "relu_before_add", "relu_preact", "full_preact")


class VariantUnit(_Unit):
    def __init__(self, in_ch: int, planes: int, stride: int = 1, shortcut: str = "B", residual: bool = True,
                 drop_path: float = 0.0, groups: int = 1, base_width: int = 64, stride_on: str = "3x3",
                 unit: str = "bn_after_add", bottleneck: bool = False) -> None:
        super().__init__()
        self.unit = unit
        width = int(planes * (base_width / 64.0)) * groups if bottleneck else planes
        out_ch = planes * (4 if bottleneck else 1)
        if bottleneck:
            s1, s3 = (stride, 1) if stride_on == "1x1" else (1, stride)
            convs = [conv1x1(in_ch, width, s1), conv3x3(width, width, s3, groups), conv1x1(width, out_ch)]
        else:
            convs = [conv3x3(in_ch, planes, stride), conv3x3(planes, planes)]
        for i, c in enumerate(convs, start=1):
            self.add_module(f"conv{i}", c)
            # bn_after_add normalises the sum instead of the last convolution's output
            if not (unit == "bn_after_add" and i == len(convs)):
                self.add_module(f"bn{i}", nn.BatchNorm2d(c.out_channels))
        self.n = len(convs)
        if unit == "bn_after_add":
            self.bn_out = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=False)
        self._init_shortcut(shortcut, in_ch, out_ch, stride, residual, drop_path, preact=False)

    @property
    def last_bn(self) -> nn.BatchNorm2d | None:
        return getattr(self, f"bn{self.n}", None)

    @property
    def last_conv(self) -> nn.Conv2d:
        return getattr(self, f"conv{self.n}")

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(x) if self.unit == "relu_preact" else x
        for i in range(1, self.n + 1):
            out = getattr(self, f"conv{i}")(out)
            bn = getattr(self, f"bn{i}", None)
            if bn is not None:
                out = bn(out)
            if i < self.n or self.unit == "relu_before_add":
                out = self.relu(out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.residual:
            out = self.drop_path(out) + self._identity(x)
        if self.unit == "bn_after_add":
            out = self.relu(self.bn_out(out))
        return out
