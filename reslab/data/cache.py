"""Decode an image folder once into a uint8 array on disk; rebuilt when the source files change."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..errors import ReslabError
from ..utils.io import atomic_path
from ..utils.progress import Progress
from .decode import load_resized, load_square
from .folder import ImageFolderIndex

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("RESLAB_CACHE", Path.home() / ".cache" / "reslab"))


def fingerprint(index: ImageFolderIndex, size: int, interpolation: str = "bilinear", crop: int | None = None) -> str:
    """Changes whenever a file is added, removed, renamed, resized or touched, or the size, the crop or
    the resize filter changes."""
    mode = ("" if interpolation == "bilinear" else "|" + interpolation) + ("" if crop is None else f"|crop{crop}")
    h = hashlib.sha256(f"v1|{size}|{index.classes}{mode}".encode())
    if crop is not None:  # labels may come from a ground-truth file rather than the folders
        h.update(str(index.labels).encode())
    for p in index.paths:
        st = p.stat()
        h.update(f"{p.relative_to(index.root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def decode_folder(index: ImageFolderIndex, size: int, skip_bad: bool = False, workers: int | None = None,
                  desc: str = "decode", interpolation: str = "bilinear",
                  crop: int | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """All images of `index` as (N, 3, S, S) uint8 + labels, and the number skipped: the shorter side
    resized to `size` and the centre square (S = size), or with `crop` torchvision's evaluation
    transform (resize, centre crop; S = crop)."""
    side = crop or size
    out = torch.empty((len(index), 3, side, side), dtype=torch.uint8)
    ok = torch.ones(len(index), dtype=torch.bool)
    progress = Progress(len(index), desc=desc, unit="img")

    def one(i: int) -> None:
        try:
            out[i] = (load_square(index.paths[i], size, interpolation) if crop is None
                      else load_resized(index.paths[i], size, crop, interpolation))
        except ReslabError:
            if not skip_bad:
                raise
            ok[i] = False

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for done, _ in enumerate(pool.map(one, range(len(index))), start=1):
            if done % 256 == 0 or done == len(index):
                progress.update(done)
    progress.close()
    skipped = int((~ok).sum())
    if skipped:
        log.warning("skipped %d unreadable image(s) under %s", skipped, index.root)
    labels = torch.tensor(index.labels, dtype=torch.int64)
    return out[ok], labels[ok], skipped


def cached_folder(index: ImageFolderIndex, size: int, cache_dir: Path | None = None, skip_bad: bool = False,
                  interpolation: str = "bilinear", crop: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """decode_folder, memoised on disk under `cache_dir` by the folder's fingerprint."""
    cache_dir = Path(cache_dir or default_cache_dir()) / "images"
    key = fingerprint(index, size, interpolation, crop)
    data, meta = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    if data.is_file() and meta.is_file():
        try:
            labels = torch.tensor(json.loads(meta.read_text())["labels"], dtype=torch.int64)
            images = torch.from_numpy(np.load(data, mmap_mode="r").copy())
            if len(images) == len(labels):
                return images, labels
        except (OSError, ValueError, KeyError):
            log.warning("image cache %s unreadable; rebuilding", data)
    images, labels, _ = decode_folder(index, size, skip_bad, desc=f"decode {index.root.name}",
                                      interpolation=interpolation, crop=crop)
    try:
        with atomic_path(data) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, images.numpy())
        with atomic_path(meta) as tmp:
            tmp.write_text(json.dumps({"root": str(index.root), "size": size, "labels": labels.tolist()}))
    except (OSError, ReslabError) as e:  # a read-only or full cache folder only costs speed
        log.warning("could not write image cache under %s (%s); continuing without it", cache_dir, e)
    return images, labels
