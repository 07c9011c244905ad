"""A model ready for inference: the network, its class names and the preprocessing it was trained
with, read from the checkpoint (reslab) or given/defaulted (third-party files)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.pipeline import Preprocess
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, center_crop, normalize
from ..errors import ReslabError
from ..models import ResNet
from ..models.factory import model_from_checkpoint
from .images import load_images


@dataclass
class InferenceModel:
    model: ResNet
    classes: list[str]
    preprocess: Preprocess
    weights: Path
    name: str

    @property
    def in_chans(self) -> int:
        return self.model.cfg.in_chans

    def load(self, paths: list[Path]) -> torch.Tensor:
        """Image files decoded as this model's evaluation saw them: resize the shorter side to
        image_size, centre crop (torchvision's arithmetic), the recorded interpolation."""
        p = self.preprocess
        return load_images(paths, p.image_size, self.in_chans, crop=p.crop, interpolation=p.interpolation)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x S x S (S = preprocess.image_size, see load_images) -> the network's float input,
        exactly as evaluation during training prepared it (normalise, centre crop)."""
        check_input(images, self.in_chans, dtype=torch.uint8)
        crop = self.preprocess.crop
        if min(images.shape[-2:]) < crop:
            raise ReslabError(f"images are {images.shape[-2]} x {images.shape[-1]}, smaller than the model's "
                              f"{crop} x {crop} input: decode files with load_images(paths, {self.preprocess.image_size})")
        x = normalize(images, self.preprocess.mean, self.preprocess.std)
        return center_crop(x, crop) if crop < x.shape[-1] or crop < x.shape[-2] else x


def check_input(x: torch.Tensor, in_chans: int, size: int | None = None, dtype: torch.dtype | None = None) -> None:
    """One-line errors for tensors of the wrong rank, channel count, size or type."""
    if x.ndim != 4:
        raise ReslabError(f"expected a batch of images N x {in_chans} x H x W, got a tensor of shape {list(x.shape)}")
    if x.shape[1] != in_chans:
        raise ReslabError(f"the model takes {in_chans}-channel images, got {x.shape[1]} channels (shape {list(x.shape)})")
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        raise ReslabError(f"the model takes {size} x {size} inputs, got {x.shape[-2]} x {x.shape[-1]}")
    if dtype is not None and x.dtype != dtype:
        raise ReslabError(f"expected {dtype} images, got {x.dtype}")


def load_inference_model(weights: str, model: str | None = None, classes: list[str] | None = None,
                         image_size: int | None = None, crop: int | None = None,
                         mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> InferenceModel:
    """reslab checkpoints and named pretrained sets ("tv2", "resnet50.a1_in1k", "akamaster": `reslab
    weights`) carry everything; for other files pass `model` (and optionally classes; preprocessing
    then defaults to ImageNet statistics at 256 -> 224, or 32 for CIFAR nets)."""
    from ..hub import open_checkpoint
    opened = open_checkpoint(weights, model)
    ckpt, path = opened.checkpoint, opened.path
    net = model_from_checkpoint(ckpt, model, str(weights))
    name = (opened.weight_set.name if opened.weight_set else (ckpt.model_name or path.stem) if ckpt.config is not None
            else model)
    recorded = ckpt.preprocess
    small = net.cfg.stem == "cifar"
    size = image_size or recorded.get("image_size") or (32 if small else 256)
    pre = Preprocess(tuple(mean or recorded.get("mean") or IMAGENET_MEAN), tuple(std or recorded.get("std") or IMAGENET_STD),
                     int(size), int(crop or recorded.get("crop") or (size if small else min(224, size))),
                     str(recorded.get("interpolation", "bilinear")))
    names = classes or ckpt.classes
    n = net.cfg.num_classes
    if names is None:
        names = [f"class {i}" for i in range(n)]
    if n and len(names) != n:
        raise ReslabError(f"{len(names)} class names given for a model with {n} outputs")
    return InferenceModel(net.eval(), list(names), pre, path, name)
