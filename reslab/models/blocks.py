"""Residual units: y = relu(F(x) + shortcut(x)) (original) and y = x + F(relu(bn(x))) (pre-activation).

Every block takes `residual`: False gives the plain twin, the same layers without the addition,
so that a plain net and its option-A residual twin have exactly the same parameters.
Parameter names follow torchvision (conv1/bn1/.../downsample.0/1) so its checkpoints load as is.

Dilation (segmentation backbones): `first_dilation` is the dilation of the block's first 3x3 and
`dilation` of the others, as torchvision / timm build a dilated stage (its first block keeps the
previous stage's dilation). Unlike torchvision, basic blocks support it too.

ResNet-D and anti-aliasing (He T. et al. 2019; Zhang 2019), as timm builds them: `avg_down` gives a
projection shortcut a 2x2 average pool before its stride-1 1x1 conv; `aa` ("blur" or "avg") moves the
stride of the strided 3x3 onto a layer after its ReLU (`aa`), also where dilation replaced the stride.

Every block is TorchScript-compatible: no properties, shortcut choices fixed at construction.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ReslabError
from .layers import DropPath, bottleneck_strides, bottleneck_width, conv1x1, conv3x3, is_projection, make_shortcut
from .pooling import anti_alias


class _Unit(nn.Module):
    """Shared shortcut / stochastic-depth wiring of the block kinds."""

    def _init_shortcut(self, shortcut: str, in_ch: int, out_ch: int, stride: int, residual: bool,
                       drop_path: float, preact: bool, avg_down: bool = False, dilated: bool = False) -> None:
        self.residual = residual
        self.downsample = (make_shortcut(shortcut, in_ch, out_ch, stride, preact, avg_down, dilated) if residual
                           else None)
        # In pre-activation units a projection sees the pre-activated input (the 2016 paper's first unit
        # of a stage), while an identity (or option A) carries x untouched.
        self.shortcut_sees_preact = preact and is_projection(self.downsample)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _identity(self, x: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        """What the shortcut carries (pre: the pre-activated input; x itself in original units)."""
        if self.downsample is None:
            return x
        return self.downsample(pre if self.shortcut_sees_preact else x)

    def zero_init_last(self) -> None:
        """Zero the branch's last scale so the block starts as its shortcut (zero_init_residual)."""
        raise NotImplementedError


def _aa_layer(aa: str, channels: int, stride: int, first_dilation: int, dilation: int) -> nn.Module | None:
    """timm's rule: anti-alias where the block strides, or where dilation replaced its stride."""
    return anti_alias(aa, channels, stride) if aa and (stride > 1 or first_dilation != dilation) else None


def _post_activation_only(name: str, aa: str) -> None:
    if aa:
        raise ReslabError(f"{name} does not support aa={aa!r}: anti-aliasing is placed as timm places it, in the "
                          f"original units (BasicBlock, Bottleneck)")


def _basic_only(name: str, groups: int, base_width: int, stride_on: str) -> None:
    if groups != 1 or base_width != 64:
        raise ReslabError(f"{name} supports only groups=1 and base_width=64 (got {groups}, {base_width}): "
                          f"grouped or wide convolutions need bottleneck blocks")
    if stride_on != "3x3":
        raise ReslabError(f"{name} has no 1x1 convolution to stride: stride_on={stride_on!r} applies to bottlenecks")


class BasicBlock(_Unit):
    """Two 3x3 conv-BN layers; ReLU after the addition (ResNet-18/34, CIFAR 6n+2)."""

    def __init__(self, in_ch: int, planes: int, stride: int = 1, shortcut: str = "B", residual: bool = True,
                 drop_path: float = 0.0, groups: int = 1, base_width: int = 64, stride_on: str = "3x3",
                 dilation: int = 1, first_dilation: int | None = None, avg_down: bool = False, aa: str = "") -> None:
        super().__init__()
        _basic_only("BasicBlock", groups, base_width, stride_on)
        first = first_dilation or dilation
        aa_layer = _aa_layer(aa, planes, stride, first, dilation)
        self.conv1 = conv3x3(in_ch, planes, 1 if aa_layer is not None else stride, dilation=first)
        self.bn1 = nn.BatchNorm2d(planes)
        self.aa = aa_layer  # after bn1's ReLU, the stride of conv1
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self._init_shortcut(shortcut, in_ch, planes, stride, residual, drop_path, False, avg_down, first != dilation)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def residual_branch(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): everything but the addition and the final ReLU."""
        out = self.relu(self.bn1(self.conv1(x)))
        if self.aa is not None:
            out = self.aa(out)
        return self.bn2(self.conv2(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.residual_branch(x)
        if self.residual:
            out = self.drop_path(out) + self._identity(x, x)
        return self.relu(out)


class Bottleneck(_Unit):
    """1x1 reduce, 3x3, 1x1 expand (x4); ReLU after the addition (ResNet-50/101/152/200)."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, shortcut: str = "B", residual: bool = True,
                 drop_path: float = 0.0, groups: int = 1, base_width: int = 64, stride_on: str = "3x3",
                 dilation: int = 1, first_dilation: int | None = None, avg_down: bool = False, aa: str = "") -> None:
        super().__init__()
        width, out_ch = bottleneck_width(planes, base_width, groups), planes * self.expansion
        s1, s3 = bottleneck_strides(stride, stride_on)
        first = first_dilation or dilation
        aa_layer = _aa_layer(aa, width, s3, first, dilation)
        self.conv1 = conv1x1(in_ch, width, s1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, 1 if aa_layer is not None else s3, groups, first)
        self.bn2 = nn.BatchNorm2d(width)
        self.aa = aa_layer  # after bn2's ReLU, the stride of conv2
        self.conv3 = conv1x1(width, out_ch)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self._init_shortcut(shortcut, in_ch, out_ch, stride, residual, drop_path, False, avg_down, first != dilation)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def residual_branch(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): everything but the addition and the final ReLU."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        if self.aa is not None:
            out = self.aa(out)
        return self.bn3(self.conv3(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.residual_branch(x)
        if self.residual:
            out = self.drop_path(out) + self._identity(x, x)
        return self.relu(out)


class PreActBasicBlock(_Unit):
    """BN-ReLU-conv3x3 twice; nothing after the addition (He et al. 2016, "full pre-activation")."""

    def __init__(self, in_ch: int, planes: int, stride: int = 1, shortcut: str = "B", residual: bool = True,
                 drop_path: float = 0.0, groups: int = 1, base_width: int = 64, stride_on: str = "3x3",
                 dilation: int = 1, first_dilation: int | None = None, avg_down: bool = False, aa: str = "") -> None:
        super().__init__()
        _basic_only("PreActBasicBlock", groups, base_width, stride_on)
        _post_activation_only("PreActBasicBlock", aa)
        first = first_dilation or dilation
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = conv3x3(in_ch, planes, stride, dilation=first)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.relu = nn.ReLU(inplace=False)
        self._init_shortcut(shortcut, in_ch, planes, stride, residual, drop_path, True, avg_down, first != dilation)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.weight)

    def residual_branch(self, pre: torch.Tensor) -> torch.Tensor:
        """F from the pre-activated input relu(bn1(x)): everything after it but the addition."""
        return self.conv2(self.relu(self.bn2(self.conv1(pre))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        out = self.residual_branch(pre)
        if not self.residual:
            return out
        return self.drop_path(out) + self._identity(x, pre)


class PreActBottleneck(_Unit):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1 (x4); ResNet-164/1001 and ImageNet pre-act nets."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, shortcut: str = "B", residual: bool = True,
                 drop_path: float = 0.0, groups: int = 1, base_width: int = 64, stride_on: str = "3x3",
                 dilation: int = 1, first_dilation: int | None = None, avg_down: bool = False, aa: str = "") -> None:
        super().__init__()
        _post_activation_only("PreActBottleneck", aa)
        width, out_ch = bottleneck_width(planes, base_width, groups), planes * self.expansion
        s1, s3 = bottleneck_strides(stride, stride_on)
        first = first_dilation or dilation
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = conv1x1(in_ch, width, s1)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, s3, groups, first)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_ch)
        self.relu = nn.ReLU(inplace=False)
        self._init_shortcut(shortcut, in_ch, out_ch, stride, residual, drop_path, True, avg_down, first != dilation)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)

    def residual_branch(self, pre: torch.Tensor) -> torch.Tensor:
        """F from the pre-activated input relu(bn1(x)): everything after it but the addition."""
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        return self.conv3(self.relu(self.bn3(out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        out = self.residual_branch(pre)
        if not self.residual:
            return out
        return self.drop_path(out) + self._identity(x, pre)
