"""Image files for inference: find them, decode them (Pillow) at the model's image size."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..data.preprocessing import InputConfig, eval_image
from ..data.folder import IMAGE_EXTENSIONS
from ..errors import ReslabError

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as Pillow's convert("L")


def list_images(*targets: str | os.PathLike) -> list[Path]:
    """Image files given directly, and every image under given folders (recursively, sorted)."""
    out: list[Path] = []
    for t in targets:
        p = Path(t)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ReslabError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {p}")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise ReslabError(f"no such file or folder: {p}")
    return out


def load_images(paths: list[Path], size: int, in_chans: int = 3, crop: int | None = None,
                interpolation: str = "bilinear", exif: bool = False) -> torch.Tensor:
    """uint8 N x in_chans x S x S: the shorter side resized to `size`, then the centre crop (`crop`, else
    the centre square), torchvision's arithmetic. Grayscale models get the luminance; a bad file is a
    one-line error. exif=True turns photos upright by their EXIF orientation tag first."""
    cfg = InputConfig(crop or size, size, interpolation)
    return to_channels(torch.stack([eval_image(p, cfg, exif) for p in paths]), in_chans)


def to_channels(batch: torch.Tensor, in_chans: int) -> torch.Tensor:
    """uint8 RGB N x 3 x H x W as the model's channels: unchanged, or the luminance for 1-channel models."""
    if in_chans == batch.shape[1]:
        return batch
    if in_chans == 1:
        w = torch.tensor(_LUMA).view(1, 3, 1, 1)
        return (batch.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise ReslabError(f"image files give 1 or 3 channels; this model takes {in_chans}")
