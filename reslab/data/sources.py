"""Turn a `--data` value into what a training run uses (`load_data`) or what an evaluation reads
(`evaluation_split`): the catalog (data/catalog.py) says where the images are; this decides how
they are decoded.

Input geometry, one rule for every path: the network input is `crop` (default: the images' size on
the square path, 224 on the whole-image path); evaluation resizes the shorter side to `resize` and
cuts the centre crop (data/preprocessing.py, torchvision's transform to the pixel). `resize` is
floor(crop / crop_pct); crop_pct defaults to torchvision's 0.875 when training crops at random scales
(rrc, scale: the ImageNet protocol) and to "no resize" (the images' own size) when it does not (CIFAR's
pad-and-crop, none), so evaluation sees objects at the scale training saw them.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import ReslabError
from .cache import cached_split
from .catalog import Catalog, hold_out, locate, take_subsets
from .preprocessing import InputConfig, eval_image, resize_center_crop
from .streaming import StreamSplit
from .types import DataBundle, FileSplit, Split, default_cache_dir
from .whole import WholeSplit, build_aspect_cache

log = logging.getLogger(__name__)
IMAGENET_CROP_PCT = 0.875  # torchvision's 256 -> 224
AUGMENTS = ("auto", "cifar", "scale", "rrc", "none")
WHOLE_AUGMENTS = ("auto", "rrc", "scale", "none")


def load_data(spec: str | None, *, cache_size: int | None = None, val_split: int = 0, download: bool = False,
              skip_bad: bool = False, cache_dir: str | None = None, seed: int = 0, stream: bool = False,
              train_subset: int = 0, eval_subset: int = 0, interpolation: str = "bilinear", input: str = "square",
              augment: str = "auto", crop: int = 0, crop_pct: float = 0.0, cache_shorter: int = 0,
              ten_crop: bool = False, min_scale: float = 0.08) -> DataBundle:
    """Everything a training run reads, decoded as its input path needs: the square path decodes once
    into a memory-mapped cache (or per batch with `stream`), the whole-image path crops each sample
    on the whole image; evaluation splits are decoded by the evaluation transform."""
    cat = prepared_catalog(spec, cache_dir, download, val_split, seed, train_subset, eval_subset)
    train = cat.splits.get("train")
    if train is None:
        raise ReslabError(f"--data {spec} has no training images (only {', '.join(cat.splits)}/): nothing to train on")
    if len(cat.classes) < 2:
        raise ReslabError(f"--data {spec} has {len(cat.classes)} class ({', '.join(cat.classes)}): a classifier needs "
                          f"at least two")
    cfg, kind, size = input_geometry(cat, input, augment, crop, crop_pct, cache_size, interpolation)
    eval_cfg = cfg.for_ten_crop() if ten_crop else cfg
    cache = Path(cache_dir or default_cache_dir())
    if input == "whole":
        train = _whole_train(train, kind, cfg, cache_shorter, cache, min_scale)
    elif isinstance(train, FileSplit):
        square = InputConfig(size, size, interpolation)
        train = (StreamSplit(train.refs, torch.tensor(train.labels), size, "train", interpolation, train.shards)
                 if stream else cached_split(train, square, cache, skip_bad))
    evals = {}
    for name in ("val", "test"):
        s = cat.splits.get(name)
        if s is not None:
            evals[name] = decoded(s, eval_cfg, cache, skip_bad)  # once, memory-mapped: every evaluation reads it
    small = input != "whole" and size <= 64
    return DataBundle(cat.name, cat.classes, train, evals.get("test"), evals.get("val"), cat.mean, cat.std, small,
                      info={"root": str(cat.root) if cat.root else None, "input": input, "augment": kind,
                            "min_scale": min_scale, "eval": dataclasses.replace(cfg, classes=tuple(cat.classes))})


def prepared_catalog(spec: str | None, cache_dir: str | None = None, download: bool = False, val_split: int = 0,
                     seed: int = 0, train_subset: int = 0, eval_subset: int = 0) -> Catalog:
    cat = locate(spec, cache_dir, download)
    if val_split:
        cat = hold_out(cat, val_split, seed)
    if train_subset or eval_subset:
        cat = take_subsets(cat, train_subset, eval_subset, seed)
    return cat


def input_geometry(cat: Catalog, input: str, augment: str, crop: int, crop_pct: float, cache_size: int | None,
                   interpolation: str) -> tuple[InputConfig, str, int]:
    """(evaluation InputConfig, resolved augment kind, training image size) for this data and options."""
    if augment not in AUGMENTS:
        raise ReslabError(f"data.augment={augment!r} is invalid; choose one of {', '.join(AUGMENTS)}")
    if input == "whole":
        if cat.arrays:
            raise ReslabError("data.input=whole reads image files (folders, archives, shards); CIFAR's arrays are "
                              "whole already: use data.input=square")
        if augment not in WHOLE_AUGMENTS:
            raise ReslabError(f"data.input=whole crops with augment {', '.join(WHOLE_AUGMENTS)} (got {augment!r}: "
                              f"CIFAR's pad-and-crop is for 32-pixel arrays; use data.input=square)")
        kind = "rrc" if augment == "auto" else augment
        size = int(crop or 224)
        resize = math.floor(size / (crop_pct or IMAGENET_CROP_PCT))
        return InputConfig(size, resize, interpolation, tuple(cat.mean), tuple(cat.std)), kind, size
    size = int(cache_size or _native_size(cat))
    crop = int(crop or size)
    if crop > size:
        raise ReslabError(f"data.crop={crop} is larger than the images ({size}); lower it or raise data.cache_size")
    small = size <= 64
    kind = ("cifar" if small else "rrc") if augment == "auto" else augment
    if crop_pct:
        resize = math.floor(crop / crop_pct)
    elif kind in ("rrc", "scale") and isinstance(cat.splits.get("train"), FileSplit) and not small:
        resize = math.floor(crop / IMAGENET_CROP_PCT)
    else:
        resize = size  # no rescaling: the centre crop of the images as they are
    return InputConfig(crop, max(resize, crop), interpolation, tuple(cat.mean), tuple(cat.std)), kind, size


def decoded(split: Split | FileSplit, cfg: InputConfig, cache_dir: Path | None = None, skip_bad: bool = False) -> Split:
    """An evaluation split through the evaluation transform: files via the decode cache, arrays in memory."""
    if isinstance(split, FileSplit):
        return cached_split(split, cfg, cache_dir, skip_bad)
    return transform_arrays(split, cfg)


def transform_arrays(split: Split, cfg: InputConfig) -> Split:
    """In-memory images through the evaluation transform (nothing to do when they are input-sized already)."""
    h, w = split.images.shape[-2:]
    if (h, w) == (cfg.input_size, cfg.input_size) and cfg.resize == min(h, w):
        return split
    arr = split.images.permute(0, 2, 3, 1).numpy()
    out = np.stack([resize_center_crop(a, cfg.resize, cfg.input_size, cfg.interpolation) for a in arr])
    return Split(torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), split.labels, split.name)


def evaluation_split(spec: str | None, split: str, cfg: InputConfig, *, val_split: int = 0, seed: int = 0,
                     cache_dir: str | None = None, eval_subset: int = 0) -> tuple[Catalog, Split | FileSplit]:
    """One split to evaluate, undecoded (files stream through `cfg`'s transform batch by batch) or as
    transformed arrays. `split`: auto (what training monitors: val, else test), val, test or train."""
    cat = prepared_catalog(spec, cache_dir, val_split=val_split, seed=seed, eval_subset=eval_subset)
    name = cat.evaluation_split() if split == "auto" else split
    found = cat.split(name) if name else None
    if found is None:
        have = ", ".join(cat.splits) or "none"
        hint = " (pass --val-split N to hold out N training images)" if split == "val" and "train" in cat.splits else ""
        raise ReslabError(f"--data {spec} has no {split} split (it has: {have}){hint}")
    return cat, (transform_arrays(found, cfg) if isinstance(found, Split) else found)


def sample_split(spec: str | None, split: str, cfg: InputConfig, n: int = 0, seed: int = 0,
                 val_split: int = 0) -> tuple[Catalog, Split]:
    """n images of `split` (all when n is 0), chosen by `seed`, through `cfg`'s evaluation transform, in memory."""
    cat, s = evaluation_split(spec, split, cfg, val_split=val_split, seed=seed)
    if n and n < len(s):
        s = s.subset(torch.randperm(len(s), generator=torch.Generator().manual_seed(seed))[:n].sort().values)
    if isinstance(s, FileSplit):
        images = torch.stack([eval_image(r, cfg) for r in s.refs])
        s = Split(images, torch.tensor(s.labels, dtype=torch.int64), s.name)
    return cat, s


def _whole_train(train: FileSplit, kind: str, cfg: InputConfig, cache_shorter: int, cache_dir: Path,
                 min_scale: float = 0.08) -> WholeSplit:
    cache = None
    if cache_shorter:
        cache = build_aspect_cache(train.refs, int(cache_shorter), cache_dir / "aspect", cfg.interpolation)
    return WholeSplit(train.refs, torch.tensor(train.labels), kind, cfg.input_size, cfg.interpolation, cache,
                      resize=cfg.resize, shards=train.shards, min_scale=min_scale)


def _native_size(cat: Catalog) -> int:
    first = next(iter(cat.splits.values()))
    if isinstance(first, Split):
        return int(min(first.images.shape[-2:]))
    from PIL import Image
    from .types import open_ref
    with Image.open(open_ref(first.refs[0])) as img:
        return min(img.size)
