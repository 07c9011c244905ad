"""Decode a split of image files once into a memory-mapped uint8 array on disk; rebuilt when the files
change. Decoding writes straight into the mapped file, so memory stays bounded whatever the split's size
(50,000 ImageNet validation images at 224 px are 7.5 GB on disk, not in memory)."""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..errors import ReslabError
from ..utils.io import atomic_path
from ..utils.progress import Progress
from .preprocessing import InputConfig, eval_image
from .types import FileSplit, ImageRef, Split, TarMember, default_cache_dir

log = logging.getLogger(__name__)


def fingerprint(refs: list[ImageRef], root: Path | None, *params) -> str:
    """Changes whenever a file is added, removed, renamed, resized or touched, or a parameter changes."""
    h = hashlib.sha256(("v2|" + "|".join(map(str, params))).encode())
    stats: dict[Path, os.stat_result] = {}
    for r in refs:
        if isinstance(r, TarMember):
            st = stats.get(r.tar) or stats.setdefault(r.tar, r.tar.stat())
            h.update(f"{r.tar}|{st.st_size}|{st.st_mtime_ns}|{r.name}|{r.offset}|{r.size}\n".encode())
        else:
            st = r.stat()
            name = r.relative_to(root) if root is not None and r.is_relative_to(root) else r
            h.update(f"{name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def decode_split(split: FileSplit, cfg: InputConfig, out: np.ndarray | None = None, skip_bad: bool = False,
                 workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every image of `split` through the evaluation transform of `cfg` into `out` (N x 3 x S x S uint8,
    allocated when None); returns (images, mask of the images that could be read)."""
    n, side = len(split), cfg.input_size
    out = np.empty((n, 3, side, side), dtype=np.uint8) if out is None else out
    ok = np.ones(n, dtype=bool)
    progress = Progress(n, desc=f"decode {split.name} ({cfg.resize}->{side})", unit="img")

    def one(i: int) -> None:
        try:
            out[i] = eval_image(split.refs[i], cfg).numpy()
        except ReslabError:
            if not skip_bad:
                raise
            ok[i] = False
            out[i] = 0

    try:
        with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
            for done, _ in enumerate(pool.map(one, range(n)), start=1):
                if done % 256 == 0 or done == n:
                    progress.update(done)
    finally:
        progress.close()
    if not ok.all():
        log.warning("skipped %d unreadable image(s) under %s", int((~ok).sum()), split.root)
    return out, ok


def cached_split(split: FileSplit, cfg: InputConfig, cache_dir: str | Path | None = None,
                 skip_bad: bool = False) -> Split:
    """decode_split, memoised under CACHE/images by the files' fingerprint; the result is memory-mapped."""
    folder = Path(cache_dir or default_cache_dir()) / "images"
    key = fingerprint(split.refs, split.root, cfg.resize, cfg.input_size, cfg.interpolation, split.labels)
    data, meta = folder / f"{key}.npy", folder / f"{key}.json"
    if data.is_file() and meta.is_file():
        try:
            return _open(data, json.loads(meta.read_text()), split)
        except (OSError, ValueError, KeyError):
            log.warning("image cache %s unreadable; rebuilding", data)
    n, side = len(split), cfg.input_size
    try:
        with atomic_path(data) as tmp:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, side, side))
            _reserve(tmp, folder)  # a sparse map hitting a full disk would die of SIGBUS, not raise
            _, ok = decode_split(split, cfg, arr, skip_bad)
            arr.flush()
            del arr
        with atomic_path(meta) as tmp:
            tmp.write_text(json.dumps({"root": str(split.root), "resize": cfg.resize, "size": side,
                                       "labels": list(split.labels), "bad": np.flatnonzero(~ok).tolist()}))
        return _open(data, json.loads(meta.read_text()), split)
    except OSError as e:  # a read-only cache folder only costs speed (and memory)
        log.warning("could not write the image cache under %s (%s); decoding into memory", folder, e)
    images, ok = decode_split(split, cfg, skip_bad=skip_bad)
    return _kept(torch.from_numpy(images), split, ok)


def _reserve(path: Path, folder: Path) -> None:
    """Allocate the whole file now: a full disk is a one-line error here, before any decoding."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                free = shutil.disk_usage(folder).free
                raise ReslabError(f"disk full: the decode cache needs {size / 2**30:.1f} GiB under {folder} "
                                  f"({free / 2**30:.1f} GiB free); free some, or set RESLAB_CACHE / --data.cache_dir "
                                  f"to a larger disk") from None
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # filesystems without fallocate: carry on
                raise


def _kept(images: torch.Tensor, split: FileSplit, ok) -> Split:
    """The images that could be read, with their labels (and their shard members, for the shard order)."""
    ok = torch.as_tensor(ok, dtype=torch.bool)
    labels = torch.tensor(split.labels, dtype=torch.int64)
    refs = [r for r, k in zip(split.refs, ok.tolist()) if k] if split.shards else None
    if bool(ok.all()):
        return Split(images, labels, split.name, split.shards, refs)
    return Split(images[ok], labels[ok], split.name, split.shards, refs)


def _open(data: Path, meta: dict, split: FileSplit) -> Split:
    images = torch.from_numpy(np.load(data, mmap_mode="c"))  # copy-on-write map: pages load on demand
    if len(images) != len(meta["labels"]) or meta["labels"] != list(split.labels):
        raise ValueError("cache and labels disagree")
    ok = np.ones(len(images), dtype=bool)
    ok[meta.get("bad") or []] = False  # unreadable files skipped with data.skip_bad
    return _kept(images, split, ok)
