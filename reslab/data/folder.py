"""Folder-per-class image trees (`root/<class>/*.jpg`), decoded with Pillow into uint8 tensors."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
