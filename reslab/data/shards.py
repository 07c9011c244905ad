"""WebDataset-style tar shards: one tar per shard, `KEY.jpg` (or .jpeg/.png/.webp) + `KEY.cls` (the class
index as text) per sample, read in place (nothing extracted), shard by shard.

Layout: a folder with `train-*.tar` (and optionally `val-*.tar` or `test-*.tar`, and `classes.txt`, one
name per line), or training shards given as `a.tar,b.tar,...`.

Order, exactly reproducible: shard i belongs to rank i % world (a rank reads only its own shards) and,
within the rank, to DataLoader worker (i // world) % workers; each epoch shuffles every worker's
shard list (seed, epoch). Workers are trimmed to the same number of samples, so the DataLoader's
round-robin over workers is a fixed interleaving; a resumed epoch skips each worker's consumed
samples without decoding them and rotates the workers so the interleaving continues where it stopped.
Crops are drawn per sample from (seed, epoch, shard, position) as in data/crops.py.
"""
from __future__ import annotations

import io
import random
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ReslabError
from .crops import sample_crop
from .decode import load_resized
from .sources import DataBundle, Split
from .whole import decode_crop

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def _is_shard(path: Path) -> bool:
    try:
        with tarfile.open(path, "r|*") as tar:
            for n, m in enumerate(tar):
                if m.name.endswith(".cls"):
                    return True
                if n > 8:
                    return False
    except (tarfile.TarError, OSError, EOFError):
        return False
    return False


def _shards_in(folder: Path, prefix: str) -> list[Path]:
    return sorted(folder.glob(f"{prefix}-*.tar"))


def is_shard_set(parts: list[Path]) -> bool:
    if len(parts) == 1 and parts[0].is_dir():
        shards = _shards_in(parts[0], "train")
        return bool(shards) and _is_shard(shards[0])
    return all(p.is_file() and p.suffix == ".tar" for p in parts) and _is_shard(parts[0])


@dataclass(frozen=True)
class ShardIndex:
    path: Path
    keys: tuple[str, ...]      # samples with both an image and a .cls, in file order
    labels: tuple[int, ...]


def index_shard(path: Path) -> ShardIndex:
    """Keys and labels of one shard (reads the small .cls members, skips the images' bytes)."""
    images, labels = set(), {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                key, _, ext = m.name.rpartition(".")
                if "." + ext.lower() in IMAGE_SUFFIXES:
                    images.add(key)
                elif ext == "cls":
                    labels[key] = int(tar.extractfile(m).read().decode().strip())
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        raise ReslabError(f"{path} is not a readable shard ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    keys = tuple(k for k in _members_order(path) if k in images and k in labels)
    return ShardIndex(path, keys, tuple(labels[k] for k in keys))


def _members_order(path: Path) -> list[str]:
    seen, order = set(), []
    with tarfile.open(path, "r:*") as tar:
        for name in tar.getnames():
            key = name.rpartition(".")[0]
            if key not in seen:
                seen.add(key)
                order.append(key)
    return order


@dataclass
class ShardSplit:
    """Training shards, with the geometry of the whole-image path (crop kind, input size)."""

    shards: list[ShardIndex]
    kind: str
    size: int
    interpolation: str = "bilinear"
    name: str = "train"

    def __len__(self) -> int:
        return sum(len(s.keys) for s in self.shards)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([label for s in self.shards for label in s.labels])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def assignment(self, rank: int, world: int, workers: int) -> list[list[int]]:
        """Shard indices of each DataLoader worker of `rank`."""
        mine = [i for i in range(len(self.shards)) if i % world == rank]
        return [[i for j, i in enumerate(mine) if j % workers == w] for w in range(workers)]

    def per_worker(self, world: int, workers: int) -> int:
        """Samples each worker yields per epoch: the smallest worker's count, over every rank."""
        counts = [sum(len(self.shards[i].keys) for i in ws) for r in range(world) for ws in self.assignment(r, world, workers)]
        return min(counts)


class _ShardStream(torch.utils.data.IterableDataset):
    def __init__(self, split: ShardSplit, lists: list[list[int]], epoch: int, seed: int, per_worker: int,
                 skips: list[int], rotate: int) -> None:
        self.split, self.lists, self.epoch, self.seed = split, lists, epoch, seed
        self.per_worker, self.skips, self.rotate = per_worker, skips, rotate

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        info = torch.utils.data.get_worker_info()
        slot = info.id if info is not None else 0
        if info is None and len(self.lists) > 1:
            raise RuntimeError("shard streams need one DataLoader worker per shard list")
        w = (slot + self.rotate) % len(self.lists)  # the logical worker this process plays
        shards = list(self.lists[w])
        random.Random((self.seed * 1_000_003 + self.epoch) * 7919 + w).shuffle(shards)
        n, skip = 0, self.skips[w]
        for si in shards:
            sh = self.split.shards[si]
            wanted = {k: (pos, lab) for pos, (k, lab) in enumerate(zip(sh.keys, sh.labels))}
            with tarfile.open(sh.path, "r:*") as tar:
                for m in tar:
                    key, _, ext = m.name.rpartition(".")
                    if "." + ext.lower() not in IMAGE_SUFFIXES or key not in wanted:
                        continue
                    if n >= self.per_worker:
                        return
                    n += 1
                    if n <= skip:
                        continue  # consumed before the resume: not decoded
                    pos, label = wanted[key]
                    data = tar.extractfile(m).read()
                    x = decode_crop(io.BytesIO(data), lambda h, w_, si=si, pos=pos: sample_crop(
                        self.split.kind, self.seed, self.epoch, si * 1_000_000 + pos, h, w_, self.split.size),
                        self.split.size, self.split.interpolation)
                    yield x, label


class ShardLoader:
    """DeviceLoader's interface over tar shards."""

    def __init__(self, split: ShardSplit, batch_size: int, device: torch.device, augment, *, seed: int = 0,
                 workers: int = 2, rank: int = 0, world: int = 1) -> None:
        if batch_size % world:
            raise ReslabError(f"batch size {batch_size} must be divisible by the number of processes {world}")
        self.workers = max(1, workers)
        if len(split.shards) < world * self.workers:
            raise ReslabError(f"{len(split.shards)} shards cannot feed {world} process(es) x {self.workers} worker(s): "
                              f"make more shards or lower data.workers")
        self.split, self.device, self.augment, self.seed = split, device, augment, seed
        self.rank, self.world, self.local_batch = rank, world, batch_size // world
        self.per_worker = split.per_worker(world, self.workers)
        self.steps_per_epoch = self.per_worker * self.workers // self.local_batch
        if self.steps_per_epoch == 0:
            raise ReslabError(f"the shards hold too few samples per worker ({self.per_worker}) for batch {batch_size}")

    def __len__(self) -> int:
        return self.steps_per_epoch

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        consumed, w = start * self.local_batch, self.workers
        skips = [consumed // w + (1 if k < consumed % w else 0) for k in range(w)]
        ds = _ShardStream(self.split, self.split.assignment(self.rank, self.world, w), epoch, self.seed,
                          self.per_worker, skips, rotate=consumed % w)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=w, prefetch_factor=8)
        xs, ys, done = [], [], start
        gen = torch.Generator()  # crops and flips were drawn per sample
        for x, y in loader:
            xs.append(x)
            ys.append(y)
            if len(xs) == self.local_batch:
                yield (self.augment(torch.stack(xs).to(self.device, non_blocking=True), gen),
                       torch.tensor(ys).to(self.device, non_blocking=True))
                xs, ys, done = [], [], done + 1
                if done >= self.steps_per_epoch:
                    return


def load_shards(parts: list[Path], whole: dict, cache_size: int | None, cache_dir: str | None,
                interpolation: str) -> DataBundle:
    folder = parts[0] if parts[0].is_dir() else parts[0].parent
    train_paths = _shards_in(parts[0], "train") if parts[0].is_dir() else parts
    crop = int(whole.get("crop") or 224)
    resize = int(cache_size or round(crop * 256 / 224))
    kind = "rrc" if whole.get("augment", "auto") == "auto" else whole["augment"]
    train = ShardSplit([index_shard(p) for p in train_paths], kind, crop, interpolation)
    n_classes = max(max(s.labels) for s in train.shards if s.labels) + 1
    names_file = folder / "classes.txt"
    classes = ([c for c in names_file.read_text().splitlines() if c.strip()] if names_file.is_file()
               else [f"class {i}" for i in range(n_classes)])
    test = None
    eval_shards = (_shards_in(folder, "val") or _shards_in(folder, "test")) if parts[0].is_dir() else []
    if eval_shards:
        test = _decode_eval(eval_shards, resize, crop, interpolation)
    return DataBundle(folder.name, classes, train, test, small=False,
                      info={"root": str(folder), "input": "whole", "eval_resize": resize, "crop": crop,
                            "interpolation": interpolation, "shards": len(train.shards)})


def _decode_eval(paths: list[Path], resize: int, crop: int, interpolation: str) -> Split:
    xs, ys = [], []
    for p in paths:
        sh = index_shard(p)
        labels = dict(zip(sh.keys, sh.labels))
        with tarfile.open(p, "r:*") as tar:
            for m in tar:
                key, _, ext = m.name.rpartition(".")
                if "." + ext.lower() in IMAGE_SUFFIXES and key in labels:
                    xs.append(load_resized(io.BytesIO(tar.extractfile(m).read()), resize, crop, interpolation))
                    ys.append(labels[key])
    name = re.sub(r"-\d+$", "", paths[0].stem)
    return Split(torch.stack(xs), torch.tensor(ys), name)
