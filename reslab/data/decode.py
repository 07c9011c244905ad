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

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def check_interpolation(interpolation: str) -> str:
    """The name itself, or a one-line error naming the choices."""
    if interpolation not in INTERPOLATIONS:
        raise ReslabError(f"interpolation {interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
    return interpolation


def _pil_filter(interpolation: str):
    from PIL import Image
    check_interpolation(interpolation)
    return {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[interpolation]


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


def decode_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> torch.Tensor:
    """One image file as a 3 x H x W uint8 tensor.

    size: (height, width) to resize to (bilinear, antialiased as Pillow does), or None to keep the file's size.
    """
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            arr = rgb_array(img, path)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ReslabError(f"cannot read image {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if size is not None and arr.shape[:2] != tuple(size):
        arr = np.asarray(Image.fromarray(arr).resize((size[1], size[0]), Image.BILINEAR))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def decode_images(paths: list[Path], size: tuple[int, int] | None = None) -> torch.Tensor:
    """Decode a list of same-size images into one N x C x H x W uint8 tensor."""
    if not paths:
        raise ReslabError("no images to decode")
    first = decode_image(paths[0], size)
    out = torch.empty((len(paths), *first.shape), dtype=torch.uint8)
    out[0] = first
    for i, p in enumerate(paths[1:], start=1):
        out[i] = decode_image(p, size or tuple(first.shape[1:]))
    return out


def load_resized(path: str | os.PathLike, size: int, crop: int, interpolation: str = "bilinear") -> torch.Tensor:
    """torchvision's evaluation transform, to the pixel: Resize(size) (shorter side to `size`, the other
    side int(size * long / short), Pillow's antialiased filter), then CenterCrop(crop) (offsets
    int(round((side - crop) / 2))). uint8, 3 x crop x crop."""
    from PIL import Image
    arr = decode_image(path).permute(1, 2, 0).numpy()
    h, w = arr.shape[:2]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    if (nw, nh) != (w, h):
        arr = np.asarray(Image.fromarray(arr).resize((nw, nh), _pil_filter(interpolation)))
    if min(nh, nw) < crop:
        raise ReslabError(f"image {path} is {nw}x{nh} after resizing, smaller than the {crop}x{crop} crop")
    top, left = int(round((nh - crop) / 2.0)), int(round((nw - crop) / 2.0))
    return torch.from_numpy(arr[top:top + crop, left:left + crop].copy()).permute(2, 0, 1).contiguous()


def load_square(path: str | os.PathLike, size: int, interpolation: str = "bilinear") -> torch.Tensor:
    """Shorter side resized to `size` then centre-cropped to size x size (uint8, 3 x size x size)."""
    from PIL import Image
    img = decode_image(path)
    h, w = img.shape[1:]
    if (h, w) == (size, size):
        return img
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    pil = Image.fromarray(img.permute(1, 2, 0).numpy()).resize((nw, nh), _pil_filter(interpolation))
    arr = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)
    top, left = (nh - size) // 2, (nw - size) // 2
    return arr[:, top:top + size, left:left + size].contiguous()
