"""Constructors that need no weights registry: build_model(name, ...), model_from_checkpoint(ckpt), load_model(path),
Backbone(model). The public create_model / create_backbone (weights by name) are in reslab/api.py, above the hub."""
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


def build_model(name: str, num_classes: int | None = None, **overrides: Any) -> ResNet:
    """Preset `name` (see list_models()) with random weights. Any ResNetConfig field can be overridden
    (shortcut="B", preact=True, residual=False, depth=74, width=2, in_chans=1, drop_path_rate=0.1,
    output_stride=16, ...). Weights by name or file: `reslab.create_model` (one level up, where the hub is)."""
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    return ResNet(model_config(name, **overrides))


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
