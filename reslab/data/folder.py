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


def scan_image_folder(root: str | os.PathLike, allow_empty: bool = False) -> ImageFolderIndex:
    """Every image under root/<class>/ (recursively, sorted); classes sort into label order. A class
    folder without images is an error naming it (as torchvision's ImageFolder refuses one), unless
    `allow_empty` (an evaluation set may hold some classes only; the folder still counts as a class)."""
    root = Path(root)
    if not root.is_dir():
        raise ReslabError(f"image folder not found: {root} (expected {root}/<class>/<image files>)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ReslabError(f"{root} has no class sub-folders (expected {root}/<class>/<image files>)")
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = [f for f in sorted((root / name).rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
        if not found and not allow_empty:
            raise ReslabError(f"class folder {root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)}): "
                              f"add its images or remove the folder")
        paths += found
        labels += [label] * len(found)
    return ImageFolderIndex(root, paths, labels, classes)


def compare_classes(folder: Path, classes: list[str], reference: Path, expected: list[str]) -> None:
    """One-line error naming the class folders that differ between two splits."""
    if classes == expected:
        return
    missing, extra = sorted(set(expected) - set(classes)), sorted(set(classes) - set(expected))
    what = "; ".join(x for x in (f"lacks {', '.join(missing[:5])}" if missing else "",
                                 f"has extra {', '.join(extra[:5])}" if extra else "") if x)
    raise ReslabError(f"{folder} and {reference} have different class folders: {folder.name}/ {what or 'orders them differently'}")
