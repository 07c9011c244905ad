"""Recognising state dicts that do not fit the model they are loaded into, to say in one line what they
are (and, where reslab builds them, which preset to use) instead of a dump of missing keys.

The patterns are those of timm's ResNet variants and its ResNetV2 (timm/models/resnet.py,
resnetv2.py). reslab builds the deep 3-conv stem (ResNet-C, `stem_type`) and the average-pool shortcut
(ResNet-D, `avg_down`) with timm's key names; attention blocks, other norm layers and ResNetV2 it does not.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch

# (what it is, a key pattern that only it has): layouts reslab does not build
_LAYOUTS = [
    ("timm ResNetV2 / BiT (pre-activation with stem./stages./head.fc names)", r"^(stem\.|stages\.\d|head\.fc\.)"),
    ("a squeeze-and-excitation / ECA ResNet (se., attn. blocks)", r"\.(se|attn|eca)\.(fc|conv|proj)"),
    # reslab's and timm's blur-pools keep no state; other code saves them (aa. / blur layers, antialiased-cnns' filt)
    ("an anti-aliased ResNet in another library's layout (aa. / blur layers with state)", r"\.aa\.|\.blur|\.filt$"),
    ("a ResNet with GroupNorm (no BatchNorm running statistics)", None),
]
_DEEP_STEM = re.compile(r"^conv1\.\d+\.")
_AVG_DOWN = re.compile(r"^layer\d+\.\d+\.downsample\.2\.")


def recognise_foreign_layout(keys: Iterable[str]) -> str | None:
    """What kind of ResNet reslab does not build a state dict is, or None if reslab builds its layout."""
    keys = list(keys)
    for what, pattern in _LAYOUTS:
        if pattern and any(re.search(pattern, k) for k in keys):
            return what
    norms = [k for k in keys if re.match(r"^(bn1|layer\d\.\d+\.bn\d)\.weight$", k)]
    if norms and not any(k.endswith("running_mean") for k in keys):
        return _LAYOUTS[-1][0]
    return None


def stem_and_shortcut(state: Mapping[str, Any]) -> dict[str, Any]:
    """The ResNet-C/D options a state dict was saved with: stem_type ("", "deep", "deep_tiered"), avg_down."""
    stem_type = ""
    if any(_DEEP_STEM.match(k) for k in state):
        stem_type = "deep"
        first, last = state.get("conv1.0.weight"), state.get("conv1.6.weight")
        if isinstance(first, torch.Tensor) and isinstance(last, torch.Tensor) and first.dim() == last.dim() == 4:
            if first.shape[0] != last.shape[0] // 2:  # timm's "deep_tiered": 3/8 of the stem width first
                stem_type = "deep_tiered"
    return {"stem_type": stem_type, "avg_down": any(_AVG_DOWN.match(k) for k in state)}


def describe_variant(options: dict[str, Any]) -> str:
    """"timm ResNet-D weights (...)" for the options of `stem_and_shortcut`."""
    deep, avg = bool(options["stem_type"]), bool(options["avg_down"])
    if deep and avg:
        return "timm ResNet-D weights (a deep 3-conv stem and average-pool downsampling: conv1.0..., downsample.2...)"
    if deep:
        return "timm ResNet-C/S/T weights (a deep 3-conv stem: conv1.0, conv1.1, ...)"
    if avg:
        return "ResNet-D style weights (average-pool downsampling: downsample.1 conv, downsample.2 BN) with a 7x7 stem"
    return "standard ResNet weights (a 7x7 stem, downsample.0 conv + downsample.1 BN)"


def layout_name(options: dict[str, Any]) -> str:
    """The layout a model with these options has, in a few words."""
    deep, avg = bool(options["stem_type"]), bool(options["avg_down"])
    return {(True, True): "the ResNet-D layout (deep stem, avg_down)", (True, False): "the ResNet-C layout (deep stem)",
            (False, True): "the avg_down layout (7x7 stem)", (False, False): "the torchvision ResNet layout"}[(deep, avg)]


def suggest_model(state: Mapping[str, Any], like: Any | None = None) -> str:
    """What to build for `state`: the preset whose keys and shapes it matches exactly (the classifier
    aside; among several, the one with the anti-aliasing of the config `like`), else the options to pass."""
    from .registry import PRESETS, model_config
    from .resnet import ResNet
    options = stem_and_shortcut(state)
    wanted = _trunk_shapes(state)
    stages: dict[int, int] = {}
    for k in wanted:
        m = re.match(r"^layer(\d+)\.(\d+)\.", k)
        if m:
            stages[int(m.group(1))] = max(stages.get(int(m.group(1)), 0), int(m.group(2)) + 1)
    layers = tuple(stages[i] for i in sorted(stages))
    candidates = []
    for index, name in enumerate(PRESETS):
        cfg = model_config(name)
        if (cfg.stem_type, cfg.avg_down, cfg.layers) != (options["stem_type"], options["avg_down"], layers):
            continue  # cheap filters first: only a few presets are built (on the meta device)
        with torch.device("meta"):
            own = _trunk_shapes(ResNet(cfg).state_dict())
        if own == wanted:
            candidates.append((getattr(like, "aa", "") != cfg.aa, index, name))
    if candidates:
        return f"use {min(candidates)[2]}"
    args = ", ".join(f"{k}={v!r}" for k, v in options.items() if v) or "stem_type='', avg_down=False"
    return f"build it with {args}"


def _trunk_shapes(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Key -> shape without the classifier and BN counters (what must match whatever the head)."""
    return {k: tuple(v.shape) for k, v in state.items()
            if isinstance(v, torch.Tensor) and not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
