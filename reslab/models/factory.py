"""Public constructors: create_model(name, ...), load_model(path), create_backbone(name, ...)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ReslabError
from .config import ResNetConfig
from .registry import model_config
from .resnet import ResNet
from .weights import Checkpoint, load_into, read_checkpoint


def create_model(name: str, num_classes: int | None = None, weights: str | os.PathLike | None = None,
                 pretrained: bool = False, **overrides: Any) -> ResNet:
    """Build preset `name` (see list_models()), optionally with pretrained weights.

    Any ResNetConfig field can be overridden (shortcut="B", preact=True, residual=False, depth=74,
    width=2, in_chans=1, drop_path_rate=0.1, output_stride=16, ...). `weights` is a file (reslab
    safetensors, torchvision/timm .pth/.safetensors, community CIFAR .th) or a pretrained set's name
    ("tv2", "torchvision:IMAGENET1K_V2", "resnet50.a1_in1k", "hf-hub:timm/resnet50.a1_in1k",
    "akamaster"; `reslab weights` lists them). pretrained=True loads the architecture's default set;
    timm's "resnet50.a1_in1k" as the name does the same for that set. If num_classes is given and
    differs from the weights', the classifier is re-initialised.
    """
    from ..hub.registry import default_weights, split_name
    if split_name(name) and (pretrained or weights is None):  # timm style: create_model("resnet50.a1_in1k", pretrained=True)
        name, weights = split_name(name)[0], name if pretrained else None
    elif pretrained and weights is None:
        weights = default_weights(name).name
    opened = None
    if weights is not None:
        from ..hub.open import open_checkpoint
        opened = open_checkpoint(weights, model=_arch_of(name))
        overrides = {**opened.checkpoint.model_args, **overrides}  # e.g. shortcut B for chenyaofo's nets
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    elif opened is not None and opened.checkpoint.state_dict.get("fc.weight") is not None:
        overrides["num_classes"] = int(opened.checkpoint.state_dict["fc.weight"].shape[0])
    model = ResNet(model_config(name, **overrides))
    if opened is not None:
        load_into(model, opened.checkpoint, new_head=num_classes is not None,
                  adapt_in_chans="in_chans" in overrides, name=name)
    return model


def _arch_of(name: str) -> str | None:
    """The architecture a registry name must match: only for presets (custom depths have no sets)."""
    from .registry import PRESETS
    return name if name in PRESETS else None


def model_from_checkpoint(ckpt: Checkpoint, model: str | None = None, source: str = "checkpoint") -> ResNet:
    """The network an already-read checkpoint describes: its recorded architecture (reslab files), else
    preset `model` with the checkpoint's number of classes (torchvision/timm/community files)."""
    if ckpt.config is not None:
        net, name = ResNet(ResNetConfig.from_dict(ckpt.config)), ckpt.model_name or "model"
    elif model or ckpt.model_name:
        name = model or ckpt.model_name
        w = ckpt.state_dict.get("fc.weight")
        net = ResNet(model_config(name, **{**ckpt.model_args, **({"num_classes": int(w.shape[0])} if w is not None else {})}))
    else:
        raise ReslabError(f"{source} ({ckpt.source}) does not say its architecture: pass --model NAME")
    load_into(net, ckpt, name=name)
    return net


def load_model(path: str | os.PathLike, **overrides: Any) -> ResNet:
    """Rebuild a model from a reslab weights file alone (its config travels in the metadata)."""
    ckpt = read_checkpoint(path)
    if ckpt.config is None:
        raise ReslabError(f"{path} carries no reslab model config ({ckpt.source}); "
                          f"use create_model(NAME, weights={str(path)!r}) with the matching architecture")
    cfg = ResNetConfig.from_dict({**ckpt.config, **overrides})
    model = ResNet(cfg)
    load_into(model, ckpt, new_head="num_classes" in overrides, name=ckpt.metadata.get("model") or "model")
    return model


class Backbone(nn.Module):
    """A ResNet trunk returning the feature maps of chosen stages (FPN / U-Net input)."""

    def __init__(self, model: ResNet, out_indices: Sequence[int] = (1, 2, 3, 4)) -> None:
        super().__init__()
        last = len(model.stage_names)
        bad = [i for i in out_indices if not 0 <= int(i) <= last]
        if bad or not out_indices:
            raise ReslabError(f"out_indices {list(out_indices)} invalid; choose from 0 (stem) .. {last}")
        model.reset_classifier(0)
        self.model = model
        self.out_indices: list[int] = [int(i) for i in out_indices]
        info = {f["index"]: f for f in model.feature_info}
        self.channels = [info[i]["num_chs"] for i in self.out_indices]
        self.strides = [info[i]["reduction"] for i in self.out_indices]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_stages(x, self.out_indices)


def create_backbone(name: str, out_indices: Sequence[int] = (1, 2, 3, 4), weights: str | os.PathLike | None = None,
                    **overrides: Any) -> Backbone:
    """Multi-scale feature extractor: `.channels` and `.strides` describe each returned map.

    output_stride=16 or 8 (ImageNet nets) dilates the last stages instead of striding them, for
    segmentation (DeepLab); the weights are the same, so pretrained checkpoints load unchanged."""
    model = create_model(name, weights=weights, **overrides)
    return Backbone(model, out_indices)
