"""Starting a run from a pretrained checkpoint: the architecture it records, its weights, a new
classifier when the classes differ, its input normalisation, and what to freeze."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from ..data.types import IMAGENET_MEAN, IMAGENET_STD
from ..models import ResNet, ResNetConfig, build_model
from ..models.weights import Checkpoint, load_into
from .config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Pretrained:
    model: ResNet
    mean: tuple[float, ...]
    std: tuple[float, ...]
    head: str        # "kept", or "new (why)"
    source: str


def recorded_model_name(weights: str) -> str | None:
    """The preset name a reslab checkpoint was trained as (None for third-party files)."""
    from ..hub import open_checkpoint
    ckpt = open_checkpoint(weights).checkpoint
    return ckpt.model_name


def pretrained_model(cfg: TrainConfig, classes: list[str]) -> Pretrained:
    """Build the model of `cfg` with the weights of cfg.finetune.weights.

    reslab checkpoints rebuild their own architecture (model_args still apply: drop_path_rate, ...);
    third-party files (torchvision, timm, akamaster) need cfg.model to name it. The classifier is
    kept when the classes are the same (same names, or same count where the checkpoint records no
    names), otherwise replaced by a freshly initialised one.
    """
    from ..hub import open_checkpoint
    opened = open_checkpoint(cfg.finetune.weights, cfg.model)
    ckpt, path = opened.checkpoint, opened.path
    n = len(classes)
    if ckpt.config is not None:
        fields = {**ckpt.config, **cfg.model_args, "num_classes": n}
        model = ResNet(ResNetConfig.from_dict(fields))
    else:
        model = build_model(cfg.model, num_classes=n, **{**ckpt.model_args, **cfg.model_args})
    head = _head_decision(ckpt, classes)
    state = ckpt.state_dict if head == "kept" else {k: v for k, v in ckpt.state_dict.items() if not k.startswith("fc.")}
    load_into(model, Checkpoint(state, ckpt.source, ckpt.metadata), new_head=head != "kept",
              name=cfg.model if ckpt.config is None else f"the architecture recorded in {path.name}")
    pre = ckpt.preprocess
    mean = tuple(pre.get("mean") or IMAGENET_MEAN)  # torchvision, timm and akamaster all use ImageNet statistics
    std = tuple(pre.get("std") or IMAGENET_STD)
    return Pretrained(model, mean, std, head, f"{path} ({ckpt.source})")


def _head_decision(ckpt: Checkpoint, classes: list[str]) -> str:
    """"kept", or "new (why)": a fresh classifier when the classes differ in number or in names."""
    w = ckpt.state_dict.get("fc.weight")
    if w is None:
        return "new (the checkpoint has no classifier)"
    if int(w.shape[0]) != len(classes):
        return f"new (the checkpoint has {int(w.shape[0])} classes, the data {len(classes)})"
    if ckpt.classes is not None and ckpt.classes != classes:
        return "new (same number of classes, different class names)"
    return "kept"


def apply_freezing(model: ResNet, cfg: TrainConfig) -> str:
    """Freeze what cfg.finetune asks for; return a one-line description."""
    ft = cfg.finetune
    stages = len(model.stage_names) if ft.backbone_lr == 0 else ft.freeze_stages
    model.freeze(stages, bn_stats=ft.freeze_bn)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = "nothing" if stages == 0 else "stem + " + ", ".join(model.stage_names[:stages])
    return (f"frozen: {frozen}{' + all BN statistics' if ft.freeze_bn else ''}; trainable {trainable:,} of "
            f"{total:,} parameters; backbone lr x{ft.backbone_lr:g}")
