"""Parameter and multiply-add counts measured from the model itself (meta device, no real compute),
with the figures the papers publish beside them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .registry import PRESETS, model_config
from .resnet import ResNet


@dataclass(frozen=True)
class Reference:
    params: str = ""
    macs: str = ""
    source: str = ""


# Published figures. CIFAR params: 2015 paper Table 6. ImageNet multiply-adds: 2015 Table 1 ("FLOPs"),
# counted with the stride on the first 1x1 of the bottleneck. ImageNet params: torchvision's model
# cards. Pre-activation params: 2016 Table 3 (these exclude BatchNorm's parameters). CIFAR
# multiply-adds are the usual conv + linear count at 32x32 (e.g. akamaster's model table).
REFERENCES: dict[str, Reference] = {
    "resnet20": Reference("0.27M", "40.55M", "2015 T6"), "resnet32": Reference("0.46M", "68.86M", "2015 T6"),
    "resnet44": Reference("0.66M", "97.17M", "2015 T6"), "resnet56": Reference("0.85M", "125.49M", "2015 T6"),
    "resnet110": Reference("1.7M", "252.89M", "2015 T6"), "resnet1202": Reference("19.4M", "2.83G", "2015 T6"),
    "resnet18": Reference("11.69M", "1.8G", "2015 T1"), "resnet34": Reference("21.80M", "3.6G", "2015 T1"),
    "resnet50": Reference("25.56M", "4.1G", "torchvision"), "resnet50@1x1": Reference("25.56M", "3.8G", "2015 T1"),
    "resnet101": Reference("44.55M", "7.8G", "torchvision"), "resnet101@1x1": Reference("44.55M", "7.6G", "2015 T1"),
    "resnet152": Reference("60.19M", "11.5G", "torchvision"), "resnet152@1x1": Reference("60.19M", "11.3G", "2015 T1"),
    "preact_resnet164": Reference("1.7M", "", "2016 T3"), "preact_resnet1001": Reference("10.2M", "", "2016 T3"),
    "wrn28_10": Reference("36.5M", "", "WRN T4"), "wrn16_8": Reference("11.0M", "", "WRN T4"),
    "wrn40_4": Reference("8.9M", "", "WRN T4"),
    "wide_resnet50_2": Reference("68.88M", "11.4G", "torchvision"), "resnext50_32x4d": Reference("25.03M", "4.23G", "torchvision"),
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
    """Params and MACs of preset `name` (or a VARIANTS row), built on the meta device."""
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
