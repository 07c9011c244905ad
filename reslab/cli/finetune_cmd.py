"""`reslab finetune`: `reslab train` started from a pretrained checkpoint (recipe `finetune`)."""
from __future__ import annotations

import argparse

from ..errors import ReslabError
from . import train_cmd

ALIASES = {**train_cmd.ALIASES, "weights": "finetune.weights", "freeze_stages": "finetune.freeze_stages",
           "backbone_lr": "finetune.backbone_lr", "freeze_bn": "finetune.freeze_bn"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a pretrained checkpoint on new data (new head, freezing, lr multiplier)",
                       description="Start from pretrained weights (reslab, torchvision/timm, or community CIFAR "
                                   "checkpoints): a new classifier when the classes differ, the stem and the first "
                                   "--freeze-stages stages frozen, the rest at --backbone-lr times the learning rate, "
                                   "BN statistics optionally fixed (--freeze-bn true). Input normalisation follows the "
                                   "checkpoint (--finetune.norm data to use the data's). Everything else as `reslab train`.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train_cmd.add_run_options(p, "finetune", ALIASES)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = train_cmd.overrides_from(args)
    weights = overrides.get("finetune.weights")
    if not weights and not args.resume:
        raise ReslabError("reslab finetune needs --weights CKPT (a weights file, checkpoint folder or run folder)")
    if weights and "model" not in overrides:
        from ..training.finetune import recorded_model_name
        name = recorded_model_name(weights)
        if name is None:
            raise ReslabError(f"{weights} does not record its architecture (torchvision/timm/community file): "
                              f"pass --model NAME, e.g. --model resnet56")
        overrides["model"] = name
    return train_cmd.train_with(args, overrides)
