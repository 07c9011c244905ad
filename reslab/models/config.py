"""The typed description of one residual network: everything the constructor needs, nothing more."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import ReslabError

STEMS = ("imagenet", "cifar")
BLOCKS = ("basic", "bottleneck")
SHORTCUTS = ("A", "B", "C")
STRIDE_ON = ("3x3", "1x1")
UNITS = ("auto", "original", "bn_after_add", "relu_before_add", "relu_preact", "full_preact")
STEM_TYPES = ("", "deep", "deep_tiered")
AA = ("", "blur", "avg")


@dataclass(frozen=True)
class ResNetConfig:
    """Architecture of a (pre-activation / plain / wide / grouped) ResNet.

    stem:      "imagenet" (7x7/2 conv + 3x3/2 max-pool) or "cifar" (3x3/1 conv).
    block:     "basic" (two 3x3) or "bottleneck" (1x1 reduce, 3x3, 1x1 expand x4).
    layers:    blocks per stage, e.g. (3, 4, 6, 3).
    widths:    planes per stage before the bottleneck expansion, e.g. (64, 128, 256, 512).
    preact:    pre-activation units (BN-ReLU-conv, He et al. 2016).
    residual:  False builds the plain twin: the same layers without the addition.
    shortcut:  "A" zero-pad identity, "B" projection where the shape changes, "C" projection everywhere.
    stride_on: where a bottleneck downsamples: "3x3" (torchvision v1.5) or "1x1" (2015 paper).
    groups, base_width: grouped bottleneck (ResNeXt 32x4d) and bottleneck width (wide_resnet50_2: 128).
    dilate:    per stage after the first, replace its stride with dilation (torchvision's
               replace_stride_with_dilation; segmentation backbones); () dilates nothing.
    stem_type: ImageNet stem: "" (one 7x7/2 conv), "deep" (three 3x3 convs of widths stem_width/2,
               stem_width/2, stem_width: ResNet-C, He T. et al. 2019) or "deep_tiered" (3/8, 1/2, 1 of it;
               timm's ResNet-T).
    avg_down:  projection shortcuts average-pool 2x2 before a stride-1 1x1 conv (ResNet-D).
    aa:        anti-aliased downsampling: "blur" (BlurPool, Zhang 2019) or "avg" (2x2 average) takes over
               each stride of the blocks and of the stem's max-pool, as timm's aa_layer; "" none.
    """

    stem: str = "imagenet"
    block: str = "basic"
    layers: tuple[int, ...] = (2, 2, 2, 2)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    stem_width: int = 64
    preact: bool = False
    residual: bool = True
    shortcut: str = "B"
    stride_on: str = "3x3"
    groups: int = 1
    base_width: int = 64
    num_classes: int = 1000
    in_chans: int = 3
    zero_init_residual: bool = False
    drop_path_rate: float = 0.0
    drop_rate: float = 0.0
    unit: str = "auto"  # residual-unit variant of the 2016 paper's Table 2; auto: full_preact if preact else original
    dilate: tuple[bool, ...] = ()
    stem_type: str = ""
    avg_down: bool = False
    aa: str = ""

    def __post_init__(self) -> None:
        _check_choice("stem", self.stem, STEMS)
        _check_choice("block", self.block, BLOCKS)
        _check_choice("shortcut", self.shortcut, SHORTCUTS)
        _check_choice("stride_on", self.stride_on, STRIDE_ON)
        _check_choice("unit", self.unit, UNITS)
        _check_choice("stem_type", self.stem_type, STEM_TYPES)
        _check_choice("aa", self.aa, AA)
        if self.unit not in ("auto", "original", "full_preact") and self.preact:
            raise ReslabError(f"unit={self.unit!r} is a variant of the original unit; use it with preact=False")
        if len(self.layers) != len(self.widths) or not self.layers:
            raise ReslabError(f"layers {self.layers} and widths {self.widths} must be non-empty and of equal length")
        if any(int(n) < 1 for n in self.layers):
            raise ReslabError(f"every stage needs at least one block, got layers={self.layers}")
        for name in ("stem_width", "groups", "base_width", "in_chans"):
            if int(getattr(self, name)) < 1:
                raise ReslabError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if int(self.num_classes) < 0:
            raise ReslabError(f"num_classes must be >= 0 (0: no classifier), got {self.num_classes!r}")
        if any(int(w) < 1 for w in self.widths):
            raise ReslabError(f"widths must be positive, got {self.widths}")
        for name in ("drop_path_rate", "drop_rate"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ReslabError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        outs = [self.stem_width] + [w * self.expansion for w in self.widths]
        if self.shortcut == "A" and self.residual and any(b < a for a, b in zip(outs, outs[1:])):
            raise ReslabError(f"shortcut 'A' zero-pads channels and cannot reduce them ({outs}); use shortcut 'B'")
        if self.block == "basic" and (self.groups != 1 or self.base_width != 64):
            raise ReslabError("groups and base_width apply to bottleneck blocks only")
        if self.block == "basic" and self.stride_on != "3x3":
            raise ReslabError("stride_on='1x1' applies to bottleneck blocks only (basic blocks have no 1x1)")
        if self.dilate and len(self.dilate) != len(self.layers) - 1:
            raise ReslabError(f"dilate needs one flag per stage after the first ({len(self.layers) - 1}), got {self.dilate}")
        if not self.residual and self.drop_path_rate > 0:
            raise ReslabError("drop_path_rate (stochastic depth) needs residual blocks: a plain net has no branch to drop")
        if not self.residual and self.zero_init_residual:
            raise ReslabError("zero_init_residual would zero every layer's output in a plain net; use it with residual=True")
        self._check_bag_of_tricks()

    def _check_bag_of_tricks(self) -> None:
        """The deep stem, average-pool shortcuts and anti-aliasing: refuse what they cannot mean."""
        if self.stem_type and self.stem != "imagenet":
            raise ReslabError(f"stem_type={self.stem_type!r} replaces the ImageNet 7x7 stem; the CIFAR stem is one 3x3 conv already")
        if self.stem_type and self.stem_width % (8 if self.stem_type == "deep_tiered" else 2):
            raise ReslabError(f"stem_type={self.stem_type!r} needs stem_width divisible by "
                              f"{8 if self.stem_type == 'deep_tiered' else 2}, got {self.stem_width}")
        if self.avg_down and self.residual and self.shortcut == "A":
            raise ReslabError("avg_down pools before a projection; shortcut 'A' has none: use shortcut 'B' or 'C'")
        if self.aa and self.resolved_unit != "original":
            what = "pre-activation units (preact=True)" if self.preact else f"unit={self.unit!r}"
            raise ReslabError(f"aa={self.aa!r} is placed as timm places it in post-activation units, not in {what}")
        if self.aa and self.stride_on != "3x3":
            raise ReslabError(f"aa={self.aa!r} takes over the stride of the 3x3 convolution; use it with stride_on='3x3'")

    @property
    def resolved_unit(self) -> str:
        if self.unit == "auto":
            return "full_preact" if self.preact else "original"
        return self.unit

    @property
    def dilated_stages(self) -> tuple[bool, ...]:
        return tuple(bool(d) for d in self.dilate) or (False,) * (len(self.layers) - 1)

    @property
    def output_stride(self) -> int:
        """Input size / last feature map size."""
        stride = 4 if self.stem == "imagenet" else 1
        return stride * 2 ** sum(not d for d in self.dilated_stages)

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def convs_per_block(self) -> int:
        return 3 if self.block == "bottleneck" else 2

    @property
    def depth(self) -> int:
        """Weighted layers counted as the papers do: stem conv + block convs + classifier."""
        return 2 + self.convs_per_block * sum(self.layers)

    @property
    def num_features(self) -> int:
        return self.widths[-1] * self.expansion

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"], d["widths"], d["dilate"] = list(self.layers), list(self.widths), list(self.dilate)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ResNetConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ReslabError(f"unknown model config field(s) {unknown}; valid: {sorted(known)}")
        d = dict(d)
        for key in ("layers", "widths"):
            if key in d:
                d[key] = tuple(int(v) for v in d[key])
        if "dilate" in d:
            d["dilate"] = tuple(bool(v) for v in d["dilate"])
        return cls(**d)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ReslabError(f"{name}={value!r} is not valid; choose one of {', '.join(c or repr(c) for c in choices)}")
