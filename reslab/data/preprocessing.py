"""How a network expects its input, and the one evaluation transform built from it.

`InputConfig` is the single description of "these weights take images like this": the registry's
sets, checkpoints (their `preprocess` metadata), training runs (which write it) and every reader
(eval, predict, features, export, analysis, `reslab.transforms_for`) use it.

The evaluation transform is torchvision's `weights.transforms()` / timm's eval transform, to the pixel
on PIL images: the shorter side resized to `resize` (the other side `int(resize * long / short)`,
Pillow's antialiased filter), the centre `input_size` square cut at offsets `int(round((side -
input_size) / 2))`, then `/ 255` and `(x - mean) / std` in float32. timm's `crop_pct` is
`input_size / resize` (it resizes to `floor(input_size / crop_pct)`).
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ReslabError
from .decode import check_interpolation, decode_array, pil_filter
from .types import IMAGENET_MEAN, IMAGENET_STD, ImageRef

MIN_SIDE = 2  # a 1-pixel-wide image has no shape to classify: refused rather than stretched


@dataclass(frozen=True)
class InputConfig:
    """Network input size, resize before the centre crop, filter, normalisation, class names, and an
    optional larger test size (timm's `test_input_size`)."""

    input_size: int
    resize: int
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    classes: tuple[str, ...] = ()
    test_input_size: int = 0
    test_resize: int = 0

    def __post_init__(self) -> None:
        check_interpolation(self.interpolation)
        if self.input_size < 1 or self.resize < self.input_size:
            raise ReslabError(f"input size {self.input_size} and resize {self.resize}: need 1 <= input size <= resize "
                              f"(the centre crop is cut from the resized image)")
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ReslabError(f"mean {self.mean} and std {self.std} must have one positive std per channel")
        if self.test_input_size and self.test_resize < self.test_input_size:
            raise ReslabError(f"test input size {self.test_input_size} needs test resize >= it, got {self.test_resize}")

    def with_crop(self, crop: int) -> "InputConfig":
        """The same transform at another network input: the resize scales with it (the same crop_pct, in
        whole pixels: crop * resize // input_size)."""
        if crop == self.input_size:
            return self
        return dataclasses.replace(self, input_size=crop, resize=max(crop, crop * self.resize // self.input_size))

    def for_ten_crop(self) -> "InputConfig":
        """What ten-crop evaluation decodes: the resized image's centre square, whose corners and centre are
        then cut to input_size on the device."""
        return dataclasses.replace(self, input_size=self.resize)

    @property
    def crop_pct(self) -> float:
        return self.input_size / self.resize

    def at_test_size(self) -> "InputConfig":
        """The config at the larger test size, when the weights name one (else itself)."""
        if not self.test_input_size:
            return self
        return dataclasses.replace(self, input_size=self.test_input_size, resize=self.test_resize, test_input_size=0,
                                   test_resize=0)

    # ---------------------------------------------------------------------------------- serialised forms
    def to_dict(self) -> dict[str, Any]:
        """What checkpoints store as `preprocess` (classes travel separately in the metadata)."""
        d = {"input_size": self.input_size, "resize": self.resize, "interpolation": self.interpolation,
             "mean": list(self.mean), "std": list(self.std)}
        if self.test_input_size:
            d.update(test_input_size=self.test_input_size, test_resize=self.test_resize)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], classes: Sequence[str] | None = None, **defaults: Any) -> "InputConfig":
        """From a checkpoint's `preprocess` (this form, or reslab's earlier `image_size`/`crop`), a registry
        entry (`resize`/`crop`) or timm's pretrained_cfg (`input_size` (3, H, W), `crop_pct`); keys it
        lacks come from `defaults` (input_size, resize, mean, ...)."""
        d = {k: v for k, v in (d or {}).items() if v is not None}
        size = d.get("input_size", d.get("crop", defaults.get("input_size")))
        if isinstance(size, (list, tuple)):  # timm: (3, H, W)
            size = size[-1]
        if size is None:
            raise ReslabError("the preprocessing does not say the network's input size")
        size = int(size)
        if "resize" in d or "image_size" in d:
            resize = int(d.get("resize", d.get("image_size")))
        elif "crop_pct" in d:
            resize = math.floor(size / float(d["crop_pct"]))
        else:
            resize = int(defaults.get("resize") or size)
        test = d.get("test_input_size", 0)
        test = int(test[-1] if isinstance(test, (list, tuple)) else test or 0)
        test_resize = (int(d.get("test_resize") or math.floor(test / float(d.get("test_crop_pct") or 1.0)))
                       if test else 0)
        return cls(size, resize, str(d.get("interpolation", defaults.get("interpolation", "bilinear"))),
                   tuple(float(v) for v in d.get("mean", defaults.get("mean", IMAGENET_MEAN))),
                   tuple(float(v) for v in d.get("std", defaults.get("std", IMAGENET_STD))),
                   tuple(classes or defaults.get("classes") or ()), test, test_resize)

    def to_pretrained_cfg(self, **extra: Any) -> dict[str, Any]:
        """timm's pretrained_cfg keys (timm.data.resolve_data_config reads them from `model.pretrained_cfg`)."""
        # crop_pct a hair below input / resize: timm's floor(input_size / crop_pct) then gives resize back exactly
        cfg = {"input_size": (3, self.input_size, self.input_size), "interpolation": self.interpolation,
               "mean": tuple(self.mean), "std": tuple(self.std), "crop_pct": self.input_size / (self.resize + 1e-6),
               "crop_mode": "center", "resize": self.resize,
               "num_classes": len(self.classes) or None, "classes": list(self.classes) or None}
        if self.test_input_size:
            cfg.update(test_input_size=(3, self.test_input_size, self.test_input_size),
                       test_crop_pct=self.test_input_size / (self.test_resize + 1e-6), test_resize=self.test_resize)
        cfg.update(extra)
        return cfg


# --------------------------------------------------------------------------------------------- the transform
def resized_size(h: int, w: int, size: int) -> tuple[int, int]:
    """torchvision's Resize(int): the shorter side to `size`, the longer int(size * long / short)."""
    if min(h, w) < MIN_SIDE:
        raise ReslabError(f"a {w}x{h} image is too small to resize (each side needs at least {MIN_SIDE} pixels)")
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    return (new_long, size) if w <= h else (size, new_long)


def center_offsets(h: int, w: int, crop: int) -> tuple[int, int]:
    """torchvision's CenterCrop offsets (top, left): int(round((side - crop) / 2)), half to even."""
    return int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The centre size x size window of (..., H, W) tensors, at torchvision's offsets."""
    h, w = images.shape[-2:]
    if h < size or w < size:
        raise ReslabError(f"image {h}x{w} is smaller than the {size}x{size} crop")
    top, left = center_offsets(h, w, size)
    return images[..., top:top + size, left:left + size]


def resize_center_crop(arr: np.ndarray, resize: int, crop: int, interpolation: str = "bilinear") -> np.ndarray:
    """An H x W x 3 uint8 array through Resize(resize) + CenterCrop(crop) (Pillow's filters)."""
    from PIL import Image
    h, w = arr.shape[:2]
    nh, nw = resized_size(h, w, resize)
    if (nh, nw) != (h, w):
        arr = np.asarray(Image.fromarray(arr).resize((nw, nh), pil_filter(interpolation)))
    top, left = center_offsets(nh, nw, crop)
    return arr[top:top + crop, left:left + crop]


def eval_image(image, cfg: InputConfig, exif: bool = False) -> torch.Tensor:
    """One image (a path, a shard member, a PIL image, or an H x W x 3 uint8 array) as the network's
    evaluation saw it, before normalisation: uint8 3 x input_size x input_size."""
    arr = _rgb(image) if isinstance(image, (np.ndarray, torch.Tensor)) else decode_array(image, exif=exif)
    out = resize_center_crop(arr, cfg.resize, cfg.input_size, cfg.interpolation)
    return torch.from_numpy(np.array(out)).permute(2, 0, 1).contiguous()  # a copy: Pillow's arrays are read-only


def _rgb(arr) -> np.ndarray:
    """An in-memory image as H x W x 3 uint8: gray (H x W or H x W x 1) repeated, else refused in one line."""
    if isinstance(arr, torch.Tensor):
        raise ReslabError("the transform takes images (PIL, a path, or an H x W x 3 uint8 array), not tensors: "
                          "for uint8 batches use ImageTransform.normalize_batch")
    if arr.dtype != np.uint8:
        raise ReslabError(f"expected a uint8 image array, got {arr.dtype} (scale it to 0..255 and cast, or pass a PIL image)")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1):
        return np.repeat(arr.reshape(arr.shape[0], arr.shape[1], 1), 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ReslabError(f"expected an H x W x 3 (or H x W) image array, got shape {list(arr.shape)}: convert RGBA "
                          f"and other modes with PIL first")
    return arr


def normalize(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (..., C, H, W) -> float: / 255, then (x - mean) / std per channel (torchvision's arithmetic)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images, got {images.dtype}")
    shape = (-1, 1, 1)
    m = torch.tensor(mean, device=images.device, dtype=dtype).view(shape)
    s = torch.tensor(std, device=images.device, dtype=dtype).view(shape)
    return images.to(dtype).div_(255).sub_(m).div_(s)


class ImageTransform:
    """`reslab.transforms_for(...)`: a PIL image, an image path or an H x W x 3 uint8 array -> the normalised
    float tensor the network takes (torchvision's `weights.transforms()`, timm's eval transform).

    `uint8(img)` stops before normalising; `batch(images)` stacks uint8 inputs (N x 3 x S x S) for the
    training device, where `normalize_batch` finishes them. `exif=True` applies the JPEG orientation
    tag first (phone photos); torchvision and timm ignore it, so the default does too."""

    def __init__(self, cfg: InputConfig, exif: bool = False) -> None:
        self.cfg, self.exif = cfg, exif

    def uint8(self, image: ImageRef | str | os.PathLike) -> torch.Tensor:
        return eval_image(_as_ref(image), self.cfg, self.exif)

    def __call__(self, image) -> torch.Tensor:
        return normalize(self.uint8(image), self.cfg.mean, self.cfg.std)

    def batch(self, images: Sequence) -> torch.Tensor:
        return torch.stack([self.uint8(i) for i in images])

    def normalize_batch(self, batch: torch.Tensor) -> torch.Tensor:
        return normalize(batch, self.cfg.mean, self.cfg.std)

    def __repr__(self) -> str:
        c = self.cfg
        return (f"ImageTransform(resize={c.resize}, crop={c.input_size}, interpolation={c.interpolation}, "
                f"mean={list(c.mean)}, std={list(c.std)}{', exif=True' if self.exif else ''})")


def _as_ref(image):
    from pathlib import Path
    return Path(image) if isinstance(image, (str, os.PathLike)) else image
