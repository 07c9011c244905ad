"""Image files to uint8 RGB tensors (Pillow), the one decoder behind training, evaluation and inference.

Every mode Pillow opens becomes 8-bit RGB. High-bit-depth files are scaled, never clipped: Pillow's own
`convert("RGB")` saturates 16-bit grayscale (a mid-grey 16-bit PNG becomes pure white), so those
modes are handled here. 16-bit ("I;16*") and 32-bit integer ("I", which older Pillow versions use
for 16-bit PNGs) are read as 0..65535; float ("F") as 0..1. Values outside those ranges are
refused with a one-line error rather than guessed.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ReslabError
from .types import TarMember, open_ref

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def check_interpolation(interpolation: str) -> str:
    """The name itself, or a one-line error naming the choices."""
    if interpolation not in INTERPOLATIONS:
        raise ReslabError(f"interpolation {interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
    return interpolation


def pil_filter(interpolation: str):
    from PIL import Image
    check_interpolation(interpolation)
    return {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[interpolation]


def torch_mode(interpolation: str) -> str:
    """torch's interpolate mode that gives Pillow's filter: nearest is "nearest-exact" (pixel centres,
    as Pillow's NEAREST; torch's legacy "nearest" floors and differs in most pixels)."""
    check_interpolation(interpolation)
    return "nearest-exact" if interpolation == "nearest" else interpolation


def rgb_array(img, path: str | os.PathLike = "image") -> np.ndarray:
    """A Pillow image as an H x W x 3 uint8 array."""
    mode = img.mode
    if mode in _SIXTEEN_BIT or mode == "I":
        a = np.asarray(img).astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ReslabError(f"cannot read image {path}: 32-bit integer pixels outside 0..65535 "
                              f"({a.min()}..{a.max()}); convert it to an 8- or 16-bit image")
        gray = ((a * 255 + 32767) // 65535).astype(np.uint8)
    elif mode == "F":
        a = np.asarray(img, dtype=np.float64)
        if a.size and (not np.isfinite(a).all() or a.min() < 0 or a.max() > 1):
            raise ReslabError(f"cannot read image {path}: floating-point pixels outside [0, 1]; "
                              f"scale it to [0, 1] or convert it to an 8-bit image")
        gray = np.rint(a * 255).astype(np.uint8)
    else:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def decode_array(image, exif: bool = False) -> np.ndarray:
    """An image (a path, a shard member, a file object or a PIL image) as an H x W x 3 uint8 array.
    exif=True turns it upright by its EXIF orientation tag (as a photo viewer shows it); torchvision and
    timm ignore the tag, and so does reslab's training and evaluation."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    if isinstance(image, Image.Image):
        return rgb_array(ImageOps.exif_transpose(image) if exif else image)
    try:
        with Image.open(open_ref(image) if isinstance(image, TarMember) else image) as img:
            return rgb_array(ImageOps.exif_transpose(img) if exif else img, image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ReslabError(f"cannot read image {image}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def decode_image(path, exif: bool = False) -> torch.Tensor:
    """One image file as a 3 x H x W uint8 tensor, at its own size (resizing is the evaluation transform's:
    data/preprocessing.py)."""
    return torch.from_numpy(np.array(decode_array(path, exif))).permute(2, 0, 1).contiguous()


def decode_images(paths: list[Path]) -> torch.Tensor:
    """Same-size images as one N x C x H x W uint8 tensor (a one-line error names one of another size)."""
    if not paths:
        raise ReslabError("no images to decode")
    first = decode_image(paths[0])
    out = torch.empty((len(paths), *first.shape), dtype=torch.uint8)
    out[0] = first
    for i, p in enumerate(paths[1:], start=1):
        x = decode_image(p)
        if x.shape != first.shape:
            raise ReslabError(f"{p} is {x.shape[2]}x{x.shape[1]}, {paths[0]} {first.shape[2]}x{first.shape[1]}: "
                              f"decode_images stacks same-size images (resize with reslab.transforms_for)")
        out[i] = x
    return out
