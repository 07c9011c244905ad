"""Recognising state dicts that are not the torchvision layout reslab builds, to refuse them in one
line (what was recognised, and why it cannot load) instead of a dump of missing keys.

The patterns are those of timm's ResNet variants and its ResNetV2 (timm/models/resnet.py,
resnetv2.py): a deep 3-conv stem, average-pool downsampling, attention blocks, other norm layers.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

# (what it is, a key pattern that only it has)
_LAYOUTS = [
    ("timm ResNetV2 / BiT (pre-activation with stem./stages./head.fc names)", r"^(stem\.|stages\.\d|head\.fc\.)"),
    ("timm ResNet-D (deep stem and average-pool downsampling: conv1.0..., downsample.2...)",
     r"^layer\d\.0\.downsample\.2\."),
    ("timm ResNet-C/S/T (a deep 3-conv stem: conv1.0, conv1.1, ...)", r"^conv1\.\d+\."),
    ("a squeeze-and-excitation / ECA ResNet (se., attn. blocks)", r"\.(se|attn|eca)\.(fc|conv|proj)"),
    ("an anti-aliased / blur-pool ResNet (aa. layers)", r"\.aa\.|\.blur"),
    ("a ResNet with GroupNorm (no BatchNorm running statistics)", None),
]


def recognise_foreign_layout(keys: Iterable[str]) -> str | None:
    """What kind of non-torchvision ResNet a state dict is, or None if it looks like one reslab builds."""
    keys = list(keys)
    for what, pattern in _LAYOUTS:
        if pattern and any(re.search(pattern, k) for k in keys):
            return what
    norms = [k for k in keys if re.match(r"^(bn1|layer\d\.\d+\.bn\d)\.weight$", k)]
    if norms and not any(k.endswith("running_mean") for k in keys):
        return _LAYOUTS[-1][0]
    return None
