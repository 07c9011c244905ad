"""Presets are data: each name maps to a family and the fields that differ from it.

A family fixes the stem, widths and the rule that turns a depth into blocks per stage, so any
valid depth can be built (`create_model("resnet20", depth=74)` or simply `"resnet74"`).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ReslabError, choices_hint
from .config import ResNetConfig

# ImageNet depths of the 2015 paper's Table 1 (+ ResNet-200 of the 2016 paper, + timm's ResNet-26).
IMAGENET_LAYERS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)), 26: ("bottleneck", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
PAPER_DEPTHS = (18, 34, 50, 101, 152, 200)  # with plain and pre-activation twins

# He T. et al. 2019 ("Bag of Tricks"), with timm's names: ResNet-B (stride on the 3x3) is every preset's
# default; C adds the deep 3x3 stem, D also the average-pool shortcut. Anti-aliased nets (Zhang 2019) as
# timm's resnetblur* (BlurPool) and resnetaa* (2x2 average). (name, depth, fields)
_C = {"stem_type": "deep"}
_D = {"stem_type": "deep", "avg_down": True}
_TRICKS = "He T. et al. 2019 (Bag of Tricks), timm"
_AA = "Zhang 2019 (anti-aliased), timm"
BAG_OF_TRICKS: list[tuple[str, int, dict[str, Any], str]] = [
    ("resnet26", 26, {}, "timm (2-2-2-2 bottlenecks)"),
    *[(f"resnet{d}c", d, _C, _TRICKS) for d in (50, 101, 152)],
    *[(f"resnet{d}d", d, _D, _TRICKS) for d in (18, 26, 34, 50, 101, 152, 200)],
    ("resnetblur18", 18, {"aa": "blur"}, _AA), ("resnetblur50", 50, {"aa": "blur"}, _AA),
    ("resnetblur50d", 50, {**_D, "aa": "blur"}, _AA),
    ("resnetaa50", 50, {"aa": "avg"}, _AA), ("resnetaa50d", 50, {**_D, "aa": "avg"}, _AA),
]


@dataclass(frozen=True)
class Family:
    """A family of nets that differ only in depth."""

    name: str
    base: dict[str, Any]
    depth_offset: int = 2  # depth = offset + convs_per_block * stages * n (CIFAR); ImageNet uses the table

    def layers_for(self, depth: int, block: str) -> tuple[int, ...]:
        if self.base["stem"] == "imagenet":
            if depth not in IMAGENET_LAYERS:
                others = [d for d in IMAGENET_LAYERS if d not in PAPER_DEPTHS]
                raise ReslabError(f"{self.name}: depth {depth} is not an ImageNet ResNet depth; "
                                  f"valid: {', '.join(map(str, PAPER_DEPTHS))} (and timm's {', '.join(map(str, others))})")
            return IMAGENET_LAYERS[depth][1]
        per = 3 * (3 if block == "bottleneck" else 2)
        if depth < self.depth_offset + per or (depth - self.depth_offset) % per:
            examples = ", ".join(str(self.depth_offset + per * n) for n in (1, 2, 3, 9, 18))
            raise ReslabError(f"{self.name}: depth {depth} is invalid; depth must be {per}n+{self.depth_offset} "
                              f"with n >= 1 blocks per stage (e.g. {examples})")
        return (((depth - self.depth_offset) // per),) * 3

    def block_for(self, depth: int) -> str:
        if self.base["stem"] == "imagenet":
            return IMAGENET_LAYERS[depth][0] if depth in IMAGENET_LAYERS else "basic"
        return self.base.get("block", "basic")


CIFAR = dict(stem="cifar", widths=(16, 32, 64), stem_width=16, num_classes=10, shortcut="A")
IMAGENET = dict(stem="imagenet", widths=(64, 128, 256, 512), stem_width=64, num_classes=1000, shortcut="B")

FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("imagenet_resnet", IMAGENET),
    Family("imagenet_preact_resnet", {**IMAGENET, "preact": True}),
    Family("imagenet_plain", {**IMAGENET, "residual": False}),
    Family("cifar_resnet", CIFAR),
    Family("cifar_plain", {**CIFAR, "residual": False}),
    Family("cifar_preact_resnet", {**CIFAR, "preact": True}),
    # 2016 paper's 9n+2 bottleneck nets (ResNet-164/1001): projection shortcuts, 16-64-128-256 outputs.
    Family("cifar_preact_bottleneck", {**CIFAR, "preact": True, "block": "bottleneck", "shortcut": "B"}),
    # Wide ResNet (Zagoruyko & Komodakis 2016): pre-activation basic blocks, depth 6n+4, width x k.
    Family("wide_resnet_cifar", {**CIFAR, "preact": True, "shortcut": "B"}, depth_offset=4),
]}


@dataclass(frozen=True)
class Preset:
    name: str
    family: str
    depth: int
    overrides: dict[str, Any] = field(default_factory=dict)
    paper: str = ""  # where the architecture comes from

    def config(self, **changes: Any) -> ResNetConfig:
        return build_config(self.family, changes.pop("depth", self.depth), {**self.overrides, **changes})


def build_config(family_name: str, depth: int, fields: dict[str, Any]) -> ResNetConfig:
    family = FAMILIES[family_name]
    try:
        depth = int(depth)
    except (TypeError, ValueError):
        raise ReslabError(f"depth must be an integer, got {depth!r}") from None
    block = fields.get("block", family.block_for(depth))
    values = {**family.base, "block": block, "layers": family.layers_for(depth, block), **fields}
    if "width" in values:  # Wide ResNet multiplier k on every stage width
        k = values.pop("width")
        values["widths"] = tuple(int(w * k) for w in values["widths"])
    return ResNetConfig(**values)


def _presets() -> dict[str, Preset]:
    p: list[Preset] = []
    for d in PAPER_DEPTHS:
        p += [Preset(f"resnet{d}", "imagenet_resnet", d, paper="He et al. 2015, Table 1"),
              Preset(f"plain{d}", "imagenet_plain", d, paper="He et al. 2015, plain baseline"),
              Preset(f"preact_resnet{d}", "imagenet_preact_resnet", d, paper="He et al. 2016")]
    for d in (20, 32, 44, 56, 110, 1202):
        p += [Preset(f"resnet{d}", "cifar_resnet", d, paper="He et al. 2015, Table 6")]
        p += [Preset(f"plain{d}", "cifar_plain", d, paper="He et al. 2015, Fig. 6")]
    p += [Preset("preact_resnet110", "cifar_preact_resnet", 110, paper="He et al. 2016, Table 2"),
          Preset("preact_resnet164", "cifar_preact_bottleneck", 164, paper="He et al. 2016, Table 3"),
          Preset("preact_resnet1001", "cifar_preact_bottleneck", 1001, paper="He et al. 2016, Table 3"),
          Preset("wrn16_8", "wide_resnet_cifar", 16, {"width": 8}, paper="Zagoruyko & Komodakis 2016"),
          Preset("wrn28_10", "wide_resnet_cifar", 28, {"width": 10}, paper="Zagoruyko & Komodakis 2016"),
          Preset("wrn40_4", "wide_resnet_cifar", 40, {"width": 4}, paper="Zagoruyko & Komodakis 2016"),
          Preset("wide_resnet50_2", "imagenet_resnet", 50, {"base_width": 128}, paper="torchvision / WRN"),
          Preset("wide_resnet101_2", "imagenet_resnet", 101, {"base_width": 128}, paper="torchvision / WRN"),
          Preset("resnext50_32x4d", "imagenet_resnet", 50, {"groups": 32, "base_width": 4}, paper="Xie et al. 2017"),
          Preset("resnext101_32x8d", "imagenet_resnet", 101, {"groups": 32, "base_width": 8}, paper="Xie et al. 2017"),
          Preset("resnext101_64x4d", "imagenet_resnet", 101, {"groups": 64, "base_width": 4}, paper="Xie et al. 2017")]
    p += [Preset(name, "imagenet_resnet", depth, dict(fields), paper=paper) for name, depth, fields, paper in BAG_OF_TRICKS]
    return {x.name: x for x in p}


PRESETS: dict[str, Preset] = _presets()

# Names with a depth that is not a preset ("resnet74", "plain26", "preact_resnet47") build the CIFAR family
# ("resnet26" is timm's ImageNet bottleneck net; the CIFAR one is create_model("resnet20", depth=26)).
_PATTERN = re.compile(r"^(resnet|plain|preact_resnet)(\d+)$")
_PATTERN_FAMILY = {"resnet": "cifar_resnet", "plain": "cifar_plain", "preact_resnet": "cifar_preact_resnet"}


def list_models(pattern: str = "") -> list[str]:
    """Names of every preset (`pattern` filters by substring)."""
    return [n for n in PRESETS if pattern in n]


def resolve(name: str) -> Preset:
    """The preset for `name`; unknown names fail with the closest valid ones."""
    if name in PRESETS:
        return PRESETS[name]
    m = _PATTERN.match(str(name))
    if m:
        kind, depth = m.group(1), int(m.group(2))
        family = _PATTERN_FAMILY[kind]
        if kind == "preact_resnet" and (depth - 2) % 9 == 0 and (depth - 2) % 6 != 0:
            family = "cifar_preact_bottleneck"
        FAMILIES[family].layers_for(depth, FAMILIES[family].block_for(depth))  # raises with the rule
        return Preset(name, family, depth, paper="custom depth")
    raise ReslabError(f"unknown model {name!r}; {choices_hint(name, PRESETS)}")


CONFIG_FIELDS = sorted(f.name for f in dataclasses.fields(ResNetConfig))
OVERRIDES = sorted(set(CONFIG_FIELDS) | {"depth", "width", "output_stride", "replace_stride_with_dilation"})


def model_config(name: str, **overrides: Any) -> ResNetConfig:
    """The config of preset `name` with `overrides` applied (any ResNetConfig field, depth, width,
    output_stride, or torchvision's replace_stride_with_dilation)."""
    preset = resolve(name)
    for key in overrides:
        if key not in OVERRIDES:
            raise ReslabError(f"unknown argument {key!r} for {name}; {choices_hint(key, OVERRIDES)}")
    if "replace_stride_with_dilation" in overrides:
        overrides["dilate"] = tuple(overrides.pop("replace_stride_with_dilation"))
    output_stride = overrides.pop("output_stride", None)
    try:
        cfg = preset.config(**overrides)
    except TypeError as e:  # e.g. a list where a number is expected
        raise ReslabError(f"invalid argument for {name}: {e}") from None
    return cfg if output_stride is None else with_output_stride(cfg, int(output_stride))


def with_output_stride(cfg: ResNetConfig, output_stride: int) -> ResNetConfig:
    """Dilate the last stages so the final feature map is input / output_stride (e.g. 8 or 16 for
    ImageNet nets, whose natural stride is 32)."""
    n = len(cfg.layers) - 1
    for k in range(n + 1):  # dilate the last k stages
        candidate = dataclasses.replace(cfg, dilate=(False,) * (n - k) + (True,) * k)
        if candidate.output_stride == output_stride:
            return candidate
    natural = dataclasses.replace(cfg, dilate=()).output_stride
    valid = sorted({natural >> k for k in range(n + 1)})
    raise ReslabError(f"output_stride={output_stride} is not possible for this network (natural stride "
                      f"{natural}); choose one of {', '.join(map(str, valid))}")
