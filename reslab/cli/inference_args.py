"""Options shared by the commands that load a checkpoint for inference (predict, features, export)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ReslabError
from .arguments import positive

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="weights file, checkpoint folder or run folder")
    p.add_argument("--model", default=None, help="architecture, for checkpoints that do not record it (e.g. resnet56)")
    p.add_argument("--classes", default=None, metavar="FILE",
                   help="class names, one per line, or 'cifar10' (default: the checkpoint's, else 'class N')")
    p.add_argument("--image-size", type=positive, default=None,
                   help="resize the shorter side to this before the centre crop (default: the checkpoint's; 32 for CIFAR nets, "
                        "else 256)")
    p.add_argument("--crop", type=positive, default=None, help="network input size (default: the checkpoint's; else 224)")
    p.add_argument("--no-exif", dest="exif", action="store_false",
                   help="ignore the EXIF orientation tag of photos (as training and `reslab eval` do; torchvision too)")


def load_from_args(args: argparse.Namespace):
    from ..inference import load_inference_model
    classes = None
    if args.classes == "cifar10" and not Path(args.classes).exists():
        classes = CIFAR10_CLASSES
    elif args.classes:
        path = Path(args.classes)
        if not path.is_file():
            raise ReslabError(f"--classes {path}: no such file")
        classes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return load_inference_model(args.weights, args.model, classes, args.image_size, args.crop, exif=args.exif)
