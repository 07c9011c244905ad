"""Parameter-free downsampling layers of the "Bag of Tricks" ResNet-D and of anti-aliased ResNets.

- `BlurPool2d` (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again"): a fixed binomial
  low-pass filter ([1, 2, 1] x [1, 2, 1] / 16) applied before subsampling, as timm's `BlurPool2d`
  (filt_size=3, reflect padding).
- `avg_down_pool`: the ResNet-D shortcut's 2x2 average pool before its 1x1 projection (He T. et al.
  2019), with timm's arguments (ceil_mode=True, count_include_pad=False).
- `AvgPool2dSame`: the 2x2 stride-1 average timm's ResNet-D shortcut uses where a stage is dilated
  instead of strided (TensorFlow "SAME" padding: one zero row/column after, counted in the mean).

None of them has parameters or persistent buffers, so they leave state-dict keys unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BlurPool2d(nn.Module):
    """Blur with a fixed 3x3 binomial filter, then subsample by `stride` (depthwise, per channel)."""

    def __init__(self, channels: int, stride: int = 2) -> None:
        super().__init__()
        self.channels, self.stride = int(channels), int(stride)
        self.padding = [1, 1, 1, 1]  # filter size 3: the output size of a 3x3/stride conv with padding 1
        taps = torch.tensor([1.0, 2.0, 1.0]) / 4.0
        filt = (taps[:, None] * taps[None, :]).expand(self.channels, 1, 3, 3).contiguous()
        # Not persistent: a constant, not a weight (timm's checkpoints have no key for it either).
        self.register_buffer("filt", filt, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.padding, mode="reflect")
        return F.conv2d(x, self.filt, stride=self.stride, groups=self.channels)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, stride={self.stride}"


class AvgPool2dSame(nn.Module):
    """2x2 average with stride 1 and TensorFlow "SAME" padding (zeros after), as timm's AvgPool2dSame."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(x, [0, 1, 0, 1]), 2, 1)


def avg_down_pool(stride: int, dilated: bool) -> nn.Module:
    """The pool before a ResNet-D projection: 2x2/stride average where the block strides, the stride-1
    "SAME" average where the stride was replaced by dilation (timm's rule), identity elsewhere."""
    if stride > 1:
        return nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
    return AvgPool2dSame() if dilated else nn.Identity()


def anti_alias(kind: str, channels: int, stride: int) -> nn.Module:
    """The layer that takes over a block's stride (placed as timm places `aa_layer`)."""
    if kind == "blur":
        return BlurPool2d(channels, stride)
    # timm builds nn.AvgPool2d(stride): a 2x2/2 average, or a 1x1 (identity) one in a dilated block
    return nn.AvgPool2d(stride) if stride > 1 else nn.Identity()


def stem_pool(kind: str, channels: int) -> nn.Module:
    """The ImageNet stem's 3x3/2 max-pool, anti-aliased as timm does with `aa_layer`: a dense (stride 1)
    max-pool then a blur-pool ("MaxBlurPool"), or a 2x2/2 average instead of the max-pool."""
    if kind == "blur":
        return nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), BlurPool2d(channels, 2))
    if kind == "avg":
        return nn.AvgPool2d(2)
    return nn.MaxPool2d(3, stride=2, padding=1)
