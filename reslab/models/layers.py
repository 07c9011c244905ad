"""Small layers the blocks are made of: convolutions, shortcuts A/B/C, stochastic depth."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .pooling import avg_down_pool


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, groups=groups, dilation=dilation, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class ShortcutA(nn.Module):
    """Option A: parameter-free identity. Subsample by `stride`, zero-pad the new channels.

    The padding is split between both sides of the channel axis (the identity channels sit in
    the middle), the convention of the widely used CIFAR checkpoints (akamaster): with
    16 -> 32 channels, 8 zero channels go before and 8 after.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"option A cannot reduce channels ({in_ch} -> {out_ch}); use shortcut 'B'")
        self.stride = stride
        self.pad_before = (out_ch - in_ch) // 2
        self.pad_after = out_ch - in_ch - self.pad_before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad_before > 0 or self.pad_after > 0:
            x = F.pad(x, [0, 0, 0, 0, self.pad_before, self.pad_after])
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad=({self.pad_before}, {self.pad_after})"


def make_shortcut(kind: str, in_ch: int, out_ch: int, stride: int, preact: bool, avg_down: bool = False,
                  dilated: bool = False) -> nn.Module | None:
    """The shortcut of one block, or None for a plain identity.

    "A": identity, or ShortcutA where the shape changes. "B": projection where the shape changes.
    "C": projection on every block. A projection is 1x1 conv + BN (torchvision's `downsample.0/1`);
    in pre-activation nets it is the 1x1 conv alone, applied to the pre-activated input (2016 paper).
    avg_down (ResNet-D): a parameter-free pool, then the 1x1 conv at stride 1 (timm's `downsample.0/1/2`),
    so the projection sees every input position instead of one in four. `dilated`: this block's stride
    was replaced by dilation (the pool then keeps the resolution, as timm's).
    """
    changes = stride != 1 or in_ch != out_ch
    if kind == "A":
        return ShortcutA(in_ch, out_ch, stride) if changes else None
    if kind == "B" and not changes:
        return None
    if avg_down:
        layers = [avg_down_pool(stride, dilated), conv1x1(in_ch, out_ch)]
    else:
        layers = [conv1x1(in_ch, out_ch, stride)]
    return nn.Sequential(*layers) if preact else nn.Sequential(*layers, nn.BatchNorm2d(out_ch))


def is_projection(shortcut: nn.Module | None) -> bool:
    return isinstance(shortcut, nn.Sequential)


def bottleneck_width(planes: int, base_width: int = 64, groups: int = 1) -> int:
    """Channels of a bottleneck's 3x3 (torchvision's rule): wide_resnet50_2 (base 128) doubles them,
    ResNeXt 32x4d gives 32 groups of 4 per 64 planes."""
    return int(planes * (base_width / 64.0)) * groups


def bottleneck_strides(stride: int, stride_on: str) -> tuple[int, int]:
    """(1x1 reduce stride, 3x3 stride): the 2015 paper strides the first 1x1, torchvision the 3x3."""
    return (stride, 1) if stride_on == "1x1" else (1, stride)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop the residual branch per sample while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty([x.shape[0]] + [1] * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"
