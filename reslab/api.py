"""The public constructors, where models, pretrained weights by name (hub) and preprocessing (data) meet:
create_model, create_backbone, load_model and transforms_for. `reslab.models` alone builds networks
and reads weight files; it knows nothing of the registry."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .data.preprocessing import ImageTransform, InputConfig
from .errors import ReslabError
from .hub.open import Opened, open_checkpoint
from .hub.registry import default_weights, find_weights, split_name
from .models import Backbone, ResNet, build_model, model_from_checkpoint
from .models import load_model as _load_reslab_file
from .models.registry import PRESETS
from .models.weights import load_into, read_checkpoint


def create_model(name: str, num_classes: int | None = None, weights: str | os.PathLike | None = None,
                 pretrained: bool = False, **overrides: Any) -> ResNet:
    """Build preset `name` (see list_models()), optionally with pretrained weights.

    Any ResNetConfig field can be overridden (shortcut="B", preact=True, residual=False, depth=74,
    width=2, in_chans=1, drop_path_rate=0.1, output_stride=16, ...). `weights` is a file (reslab
    safetensors, torchvision/timm .pth/.safetensors, community CIFAR .th) or a pretrained set's name
    ("tv2", "torchvision:IMAGENET1K_V2", "DEFAULT", "resnet50.a1_in1k", "hf-hub:timm/resnet50.a1_in1k",
    "akamaster"; `reslab weights` lists them). pretrained=True loads the architecture's default set;
    timm's "resnet50.a1_in1k" as the name does the same for that set. If num_classes is given and
    differs from the weights', the classifier is re-initialised. A model with weights carries
    `model.pretrained_cfg` (timm's keys: input size, crop_pct, interpolation, mean, std, ...).
    """
    if split_name(name) and (pretrained or weights is None):  # timm style: create_model("resnet50.a1_in1k", pretrained=True)
        name, weights = split_name(name)[0], name if pretrained else None
    elif pretrained and weights is None:
        weights = default_weights(name).name
    if weights is None:
        return build_model(name, num_classes, **overrides)
    opened = open_checkpoint(weights, model=name if name in PRESETS else None)
    overrides = {**opened.checkpoint.model_args, **overrides}  # e.g. shortcut B for chenyaofo's nets
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    elif opened.checkpoint.state_dict.get("fc.weight") is not None:
        overrides["num_classes"] = int(opened.checkpoint.state_dict["fc.weight"].shape[0])
    model = build_model(name, **overrides)
    load_into(model, opened.checkpoint, new_head=num_classes is not None, adapt_in_chans="in_chans" in overrides,
              name=name)
    model.pretrained_cfg = pretrained_cfg(opened, model, new_head=num_classes is not None)
    return model


def create_backbone(name: str, out_indices: Sequence[int] = (1, 2, 3, 4), weights: str | os.PathLike | None = None,
                    **overrides: Any) -> Backbone:
    """Multi-scale feature extractor: `.channels` and `.strides` describe each returned map.

    output_stride=16 or 8 (ImageNet nets) dilates the last stages instead of striding them, for
    segmentation (DeepLab); the weights are the same, so pretrained checkpoints load unchanged."""
    return Backbone(create_model(name, weights=weights, **overrides), out_indices)


def load_model(path: str | os.PathLike, **overrides: Any) -> ResNet:
    """Rebuild a model from a reslab weights file alone (its config travels in the metadata)."""
    model = _load_reslab_file(path, **overrides)
    opened = Opened(read_checkpoint(path), Path(path), None)
    model.pretrained_cfg = pretrained_cfg(opened, model, new_head="num_classes" in overrides)
    return model


def pretrained_cfg(opened: Opened, model: ResNet, new_head: bool = False) -> dict[str, Any]:
    """timm's pretrained_cfg for a model built from `opened` (with reslab's source fields)."""
    cfg = opened.input_config(model.cfg)
    if new_head:
        cfg = dataclasses.replace(cfg, classes=())
    source = opened.weight_set.name if opened.weight_set else str(opened.path)
    extra = {"source": source, "num_classes": model.cfg.num_classes}
    if opened.weight_set is not None:
        extra.update(hf_hub_id=opened.weight_set.hf_hub or None, url=opened.weight_set.url or None,
                     license=opened.weight_set.license or None, tag=opened.weight_set.tag)
    return cfg.to_pretrained_cfg(**extra)


def input_config(spec: str | os.PathLike | ResNet | InputConfig, model: str | None = None) -> InputConfig:
    """How `spec` expects its input: a registry name ("resnet50.tv2_in1k", "tv2" with model=), a checkpoint
    file or run folder, a model built from weights (its pretrained_cfg), or an InputConfig."""
    if isinstance(spec, InputConfig):
        return spec
    if isinstance(spec, ResNet):
        if not spec.pretrained_cfg:
            raise ReslabError("this model was built without weights, so it records no preprocessing: build it with "
                              "weights=... or pass the weights' name or file to transforms_for")
        return InputConfig.from_dict(spec.pretrained_cfg, classes=spec.pretrained_cfg.get("classes") or ())
    if not Path(str(spec)).exists():
        ws = find_weights(str(spec), model)
        if ws is not None:  # a registry name: its preprocessing is data, no download needed
            return ws.input_config()
    opened = open_checkpoint(spec, model)
    net = model_from_checkpoint(opened.checkpoint, model or (opened.weight_set.arch if opened.weight_set else None),
                                str(spec))
    return opened.input_config(net.cfg)


def transforms_for(spec: str | os.PathLike | ResNet | InputConfig, model: str | None = None, *,
                   use_test_size: bool = False, exif: bool = False) -> ImageTransform:
    """The evaluation transform of `spec` (see input_config): a callable taking a PIL image, a path or an
    H x W x 3 uint8 array and returning the normalised float tensor, equal to the pixel to
    torchvision's `weights.transforms()` for torchvision's sets and timm's eval transform for timm's.
    use_test_size: timm's larger test size where the weights name one. `.batch(images)` gives the uint8
    N x 3 x S x S batch and `.normalize_batch(x)` finishes it on the training device."""
    cfg = input_config(spec, model)
    return ImageTransform(cfg.at_test_size() if use_test_size else cfg, exif=exif)
