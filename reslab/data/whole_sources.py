"""`--data` for the whole-image path (data.input=whole): trees, archives of trees, flat ImageNet
validation folders with their ground truth, and WebDataset tar shards."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..errors import ReslabError
from .archives import extract_archives
from .cache import cached_folder, default_cache_dir
from .folder import ImageFolderIndex, scan_image_folder
from .layouts import flat_val_labels, is_flat_image_folder
from .sources import DataBundle, Split
from .whole import WholeSplit, build_aspect_cache

log = logging.getLogger(__name__)


def load_whole(spec: str, whole: dict, cache_size: int | None, cache_dir: str | None, interpolation: str,
               skip_bad: bool) -> DataBundle:
    parts = [Path(p) for p in spec.split(",")]
    for p in parts:
        if not p.exists():
            raise ReslabError(f"--data {p}: no such file or folder")
    from .shards import is_shard_set, load_shards
    if is_shard_set(parts):
        return load_shards(parts, whole, cache_size, cache_dir, interpolation)
    root = extract_archives(parts, cache_dir) if all(p.is_file() for p in parts) else parts[0]
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise ReslabError(f"data.input=whole trains on {train_dir}/<class>/*: no such folder")
    train_idx = scan_image_folder(train_dir)
    crop = int(whole.get("crop") or 224)
    resize = int(cache_size or round(crop * 256 / 224))
    kind = whole.get("augment", "auto")
    kind = "rrc" if kind == "auto" else kind
    if kind not in ("rrc", "scale"):
        raise ReslabError(f"data.input=whole crops with augment rrc or scale (got {kind!r})")
    cache = None
    if whole.get("cache_shorter"):
        folder = Path(cache_dir or default_cache_dir()) / "aspect"
        cache = build_aspect_cache(train_idx.paths, int(whole["cache_shorter"]), folder, interpolation)
    train = WholeSplit(train_idx.paths, torch.tensor(train_idx.labels), kind, crop, interpolation, cache)
    test = _eval_split(root, train_idx.classes, resize, crop, interpolation, cache_dir, skip_bad)
    name = parts[0].name.split(".")[0] if parts[0].is_file() else root.name
    return DataBundle(name, train_idx.classes, train, test, small=False,
                      info={"root": str(root), "input": "whole", "eval_resize": resize, "crop": crop,
                            "interpolation": interpolation})


def _eval_split(root: Path, classes: list[str], resize: int, crop: int, interpolation: str, cache_dir: str | None,
                skip_bad: bool) -> Split | None:
    """Evaluation images as torchvision evaluates: shorter side to `resize`, centre `crop` (decoded once)."""
    eval_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if eval_dir is None:
        return None
    if is_flat_image_folder(eval_dir):
        files, labels = flat_val_labels(eval_dir, classes)
        index = ImageFolderIndex(eval_dir, files, labels, classes)
    else:
        index = scan_image_folder(eval_dir)
        if index.classes != classes:
            raise ReslabError(f"{eval_dir} and {root / 'train'} have different class folders")
    x, y = cached_folder(index, resize, cache_dir and Path(cache_dir), skip_bad, interpolation, crop=crop)
    return Split(x, y, eval_dir.name)
