"""Parameter and multiply-add counts measured from the model itself (meta device, no real compute),
with the figures the papers publish beside them."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .registry import PRESETS, model_config
from .resnet import ResNet


@dataclass(frozen=True)
class Reference:
    """Published figures for one model, each with where it is published."""

    params: str = ""
    params_source: str = ""
    macs: str = ""
    macs_source: str = ""

    @property
    def source(self) -> str:
        parts = [f"params: {self.params_source}" if self.params else "", f"MACs: {self.macs_source}" if self.macs else ""]
        return "; ".join(p for p in parts if p)


_T6 = "He et al. 2015, Table 6"
_T1 = "He et al. 2015, Table 1 (FLOPs = multiply-adds)"
_TV = "torchvision model card"  # weights meta: num_params and _ops (GFLOPS, counted as multiply-adds)
_PRE = "He et al. 2016, Table 3 (without BN parameters)"
_WRN = "Zagoruyko & Komodakis 2016, Table 4"
_TIMM = "timm 1.0.31, timm.create_model(name)"  # its parameter counts (timm publishes no exact multiply-adds)

# CIFAR nets: the 2015 paper publishes parameters only (no multiply-adds). ImageNet nets: exact
# parameter counts and multiply-adds from torchvision's weight metadata (stride on the 3x3, as its
# code), and the 2015 paper's Table 1 multiply-adds for the paper's stride on the first 1x1 (@1x1 rows).
REFERENCES: dict[str, Reference] = {
    "resnet20": Reference("0.27M", _T6), "resnet32": Reference("0.46M", _T6), "resnet44": Reference("0.66M", _T6),
    "resnet56": Reference("0.85M", _T6), "resnet110": Reference("1.7M", _T6), "resnet1202": Reference("19.4M", _T6),
    "resnet18": Reference("11,689,512", _TV, "1.814G", _TV), "resnet34": Reference("21,797,672", _TV, "3.664G", _TV),
    "resnet50": Reference("25,557,032", _TV, "4.089G", _TV), "resnet101": Reference("44,549,160", _TV, "7.801G", _TV),
    "resnet152": Reference("60,192,808", _TV, "11.514G", _TV),
    "resnet50@1x1": Reference(macs="3.8G", macs_source=_T1), "resnet101@1x1": Reference(macs="7.6G", macs_source=_T1),
    "resnet152@1x1": Reference(macs="11.3G", macs_source=_T1),
    "preact_resnet164": Reference("1.7M", _PRE), "preact_resnet1001": Reference("10.2M", _PRE),
    "wrn28_10": Reference("36.5M", _WRN), "wrn16_8": Reference("11.0M", _WRN), "wrn40_4": Reference("8.9M", _WRN),
    "wide_resnet50_2": Reference("68,883,240", _TV, "11.398G", _TV),
    "wide_resnet101_2": Reference("126,886,696", _TV, "22.753G", _TV),
    "resnext50_32x4d": Reference("25,028,904", _TV, "4.23G", _TV),
    "resnext101_32x8d": Reference("88,791,336", _TV, "16.414G", _TV),
    "resnext101_64x4d": Reference("83,455,272", _TV, "15.46G", _TV),
    # Bag of Tricks (ResNet-C/D) and anti-aliased nets: the same architectures as timm's, key for key.
    **{name: Reference(count, _TIMM) for name, count in {
        "resnet26": "15,995,176", "resnet50c": "25,576,264", "resnet101c": "44,568,392", "resnet152c": "60,212,040",
        "resnet18d": "11,708,744", "resnet26d": "16,014,408", "resnet34d": "21,816,904", "resnet50d": "25,576,264",
        "resnet101d": "44,568,392", "resnet152d": "60,212,040", "resnet200d": "64,693,064",
        "resnetblur18": "11,689,512", "resnetblur50": "25,557,032", "resnetblur50d": "25,576,264",
        "resnetaa50": "25,557,032", "resnetaa50d": "25,576,264"}.items()},
}

# Extra rows of the report: the 2015 paper's stride placement for the deep bottleneck nets.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    f"resnet{d}@1x1": (f"resnet{d}", {"stride_on": "1x1"}) for d in (50, 101, 152)
}


def standard_input(model: ResNet) -> tuple[int, int, int]:
    size = 32 if model.cfg.stem == "cifar" else 224
    return (model.cfg.in_chans, size, size)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-adds of conv and linear layers for one image (FLOPs / 2 as torch counts them)."""
    device = next(model.parameters()).device
    x = torch.empty((1, *input_shape), device=device)
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def complexity(name: str, **overrides: Any) -> dict[str, Any]:
    """Params and MACs of preset `name` (or a VARIANTS row), built on the meta device (memoised: the
    counts are a pure function of the architecture)."""
    return dict(_complexity(name, tuple(sorted((k, _hashable(v)) for k, v in overrides.items()))))


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


@functools.lru_cache(maxsize=None)
def _complexity(name: str, items: tuple) -> dict[str, Any]:
    overrides = dict(items)
    base, extra = VARIANTS.get(name, (name, {}))
    cfg = model_config(base, **{**extra, **overrides})
    with torch.device("meta"):
        model = ResNet(cfg)
    ref = REFERENCES.get(name, Reference())
    preset = PRESETS.get(base)
    return {
        "name": name, "family": "cifar" if cfg.stem == "cifar" else "imagenet",
        "depth": preset.depth if preset else cfg.depth, "block": ("preact-" if cfg.preact else "") + cfg.block,
        "residual": cfg.residual, "shortcut": cfg.shortcut if cfg.residual else "-", "stride_on": cfg.stride_on,
        "input": list(standard_input(model)), "num_classes": cfg.num_classes,
        "params": count_params(model), "macs": count_macs(model, standard_input(model)),
        "paper_params": ref.params, "paper_macs": ref.macs, "paper_source": ref.source,
    }


def report_rows(names: list[str] | None = None) -> list[dict[str, Any]]:
    if names is None:
        names = []
        for n in PRESETS:
            names.append(n)
            names += [v for v, (base, _) in VARIANTS.items() if base == n]
    return [complexity(n) for n in names]
