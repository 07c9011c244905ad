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

from functools import partial

import torch
from torch import nn

from .blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, _post_activation_only, _Unit
from .layers import bottleneck_strides, bottleneck_width, conv1x1, conv3x3


class VariantUnit(_Unit):
    def __init__(self, in_ch: int, planes: int, stride: int = 1, shortcut: str = "B", residual: bool = True,
                 drop_path: float = 0.0, groups: int = 1, base_width: int = 64, stride_on: str = "3x3",
                 dilation: int = 1, first_dilation: int | None = None, avg_down: bool = False, aa: str = "",
                 unit: str = "bn_after_add", bottleneck: bool = False) -> None:
        super().__init__()
        _post_activation_only(f"unit {unit!r}", aa)
        self.unit = unit
        self.relu_first = unit == "relu_preact"
        self.relu_before_add = unit == "relu_before_add"
        out_ch = planes * (4 if bottleneck else 1)
        first = first_dilation or dilation
        if bottleneck:
            width = bottleneck_width(planes, base_width, groups)
            s1, s3 = bottleneck_strides(stride, stride_on)
            convs = [conv1x1(in_ch, width, s1), conv3x3(width, width, s3, groups, first), conv1x1(width, out_ch)]
        else:
            convs = [conv3x3(in_ch, planes, stride, dilation=first), conv3x3(planes, planes, dilation=dilation)]
        for i, c in enumerate(convs, start=1):
            self.add_module(f"conv{i}", c)
            # bn_after_add normalises the sum instead of the last convolution's output
            last_without_bn = unit == "bn_after_add" and i == len(convs)
            self.add_module(f"bn{i}", None if last_without_bn else nn.BatchNorm2d(c.out_channels))
        if not bottleneck:
            self.add_module("conv3", None)
            self.add_module("bn3", None)
        self.bn_out = nn.BatchNorm2d(out_ch) if unit == "bn_after_add" else None
        self.relu = nn.ReLU(inplace=False)
        self._init_shortcut(shortcut, in_ch, out_ch, stride, residual, drop_path, False, avg_down, first != dilation)

    def zero_init_last(self) -> None:
        last = 3 if self.conv3 is not None else 2
        bn = getattr(self, f"bn{last}")
        nn.init.zeros_(bn.weight if bn is not None else getattr(self, f"conv{last}").weight)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(x) if self.relu_first else x
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.conv2(out)
        if self.conv3 is not None:  # bottleneck: conv2 is the middle layer
            out = self.relu(self.bn2(out))
            out = self.conv3(out)
            if self.bn3 is not None:
                out = self.bn3(out)
        elif self.bn2 is not None:
            out = self.bn2(out)
        if self.relu_before_add:
            out = self.relu(out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.residual:
            out = self.drop_path(out) + self._identity(x, x)
        if self.bn_out is not None:
            out = self.relu(self.bn_out(out))
        return out


def block_class(block: str, preact: bool, unit: str = "auto"):
    """The block constructor for a config: the standard four, or a 2016 Table 2 variant."""
    if unit in ("auto", "original", "full_preact"):
        return {("basic", False): BasicBlock, ("bottleneck", False): Bottleneck,
                ("basic", True): PreActBasicBlock, ("bottleneck", True): PreActBottleneck}[(block, preact)]
    return partial(VariantUnit, unit=unit, bottleneck=block == "bottleneck")
