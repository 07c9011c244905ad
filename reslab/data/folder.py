"""Folder-per-class image trees (`root/<class>/*.jpg`), decoded with Pillow into uint8 tensors."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ReslabError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageFolderIndex:
    """The files of an image tree with their labels; classes sort into label order."""

    root: Path
    paths: list[Path]
    labels: list[int]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.paths)


def scan_image_folder(root: str | os.PathLike) -> ImageFolderIndex:
    root = Path(root)
    if not root.is_dir():
        raise ReslabError(f"image folder not found: {root} (expected {root}/<class>/<image files>)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ReslabError(f"{root} has no class sub-folders (expected {root}/<class>/<image files>)")
    paths, labels = [], []
    for label, name in enumerate(classes):
        for f in sorted((root / name).rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(f)
                labels.append(label)
    if not paths:
        raise ReslabError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    return ImageFolderIndex(root, paths, labels, classes)


def decode_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> torch.Tensor:
    """One image as a 3xHxW uint8 tensor (grayscale, palette and alpha converted to RGB).

    size: (height, width) to resize to (bilinear), or None to keep the file's size.
    """
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ReslabError(f"cannot read image {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def decode_images(paths: list[Path], size: tuple[int, int] | None = None) -> torch.Tensor:
    """Decode a list of same-size images into one NxCxHxW uint8 tensor."""
    if not paths:
        raise ReslabError("no images to decode")
    first = decode_image(paths[0], size)
    out = torch.empty((len(paths), *first.shape), dtype=torch.uint8)
    out[0] = first
    for i, p in enumerate(paths[1:], start=1):
        img = decode_image(p, size or tuple(first.shape[1:]))
        out[i] = img
    return out
