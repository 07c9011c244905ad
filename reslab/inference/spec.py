"""A model ready for inference: the network, its class names and the evaluation transform it was trained
with, read from the checkpoint (reslab) or the named set, or given/defaulted (third-party files)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.preprocessing import InputConfig, center_crop, eval_image, normalize
from ..errors import ReslabError
from ..hub import open_checkpoint
from ..hub.classes import readable
from ..models import ResNet
from ..models.factory import model_from_checkpoint
from .images import to_channels


@dataclass
class InferenceModel:
    model: ResNet
    classes: list[str]
    preprocess: InputConfig
    weights: Path
    name: str
    exif: bool = True  # user photos are turned upright by their EXIF tag (training and `reslab eval` ignore it)

    @property
    def in_chans(self) -> int:
        return self.model.cfg.in_chans

    def load(self, paths: list[Path]) -> torch.Tensor:
        """Image files as this model's evaluation saw them (the checkpoint's evaluation transform): uint8
        N x C x S x S, S the network input."""
        images = torch.stack([eval_image(p, self.preprocess, self.exif) for p in paths])
        return to_channels(images, self.in_chans)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x H x W (from load(), or larger: centre-cropped) -> the network's float input."""
        check_input(images, self.in_chans, dtype=torch.uint8)
        crop = self.preprocess.input_size
        if min(images.shape[-2:]) < crop:
            raise ReslabError(f"images are {images.shape[-2]} x {images.shape[-1]}, smaller than the model's "
                              f"{crop} x {crop} input: decode files with InferenceModel.load(paths)")
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
                         mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                         exif: bool = True) -> InferenceModel:
    """reslab checkpoints and named pretrained sets ("tv2", "resnet50.a1_in1k", "akamaster": `reslab
    weights`) carry everything; for other files pass `model` (and optionally classes; preprocessing
    then defaults to ImageNet statistics at 256 -> 224, or 32 for CIFAR nets). image_size: the shorter
    side before the centre crop; crop: the network input (the resize follows at the same crop_pct)."""
    opened = open_checkpoint(weights, model)
    ckpt, path = opened.checkpoint, opened.path
    if model and ckpt.model_name and model != ckpt.model_name:
        raise ReslabError(f"--model {model} contradicts {weights}, which is a {ckpt.model_name}: drop --model")
    net = model_from_checkpoint(ckpt, model, str(weights))
    name = (opened.weight_set.name if opened.weight_set else (ckpt.model_name or path.stem) if ckpt.config is not None
            else model)
    cfg = opened.input_config(net.cfg)
    if crop:
        cfg = cfg.with_crop(crop)
    if image_size:
        cfg = dataclasses.replace(cfg, resize=image_size, input_size=min(cfg.input_size, image_size))
    cfg = dataclasses.replace(cfg, mean=tuple(mean or cfg.mean), std=tuple(std or cfg.std))
    names = classes or ckpt.classes
    n = net.cfg.num_classes
    if names is None:
        names = [f"class {i}" for i in range(n)]
    if n and len(names) != n:
        raise ReslabError(f"{len(names)} class names given for a model with {n} outputs")
    return InferenceModel(net.eval(), readable(list(names)), cfg, path, name, exif)
