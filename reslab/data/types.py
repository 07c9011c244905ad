"""What the data package hands around: image references, splits (in memory or as files) and the
bundle a training run gets. The bottom of the package: it imports nothing else from reslab.data."""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ReslabError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_cache_dir() -> Path:
    """Where decoded images, extracted archives and caches go: $RESLAB_CACHE or ~/.cache/reslab."""
    return Path(os.environ.get("RESLAB_CACHE", Path.home() / ".cache" / "reslab"))


@dataclass(frozen=True)
class TarMember:
    """One image inside an uncompressed tar file (a WebDataset shard), read in place by its offset."""

    tar: Path
    name: str       # the member's name in the tar
    offset: int     # of its data
    size: int

    def read(self) -> bytes:
        with open(self.tar, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.size)
        if len(data) != self.size:
            raise ReslabError(f"{self}: the shard is shorter than its index says (truncated since it was read?)")
        return data

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    def __str__(self) -> str:
        return f"{self.tar}:{self.name}"


ImageRef = Path | TarMember  # an image file, or an image inside a shard


def open_ref(ref: ImageRef):
    """A path, or a file object holding the bytes of a tar member (for Pillow and the JPEG decoders)."""
    return io.BytesIO(ref.read()) if isinstance(ref, TarMember) else ref


@dataclass
class Split:
    """Decoded images in memory (or memory-mapped): uint8 (N, 3, H, W) on the CPU, int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str = "train"
    shards: bool = False                 # decoded from tar shards: trained in webdataset's order (data/shards.py)
    refs: list | None = None             # then where each image came from (the order reads chunks of shards)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: torch.Tensor, name: str | None = None) -> "Split":
        refs = [self.refs[int(i)] for i in idx] if self.refs is not None else None
        return Split(self.images[idx], self.labels[idx], name or self.name, self.shards, refs)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


@dataclass
class FileSplit:
    """Image files (or shard members) with their labels, not decoded: what a layout reader finds."""

    refs: list[ImageRef]
    labels: list[int]
    name: str
    root: Path
    shards: bool = False  # members of tar shards: read in webdataset's order (data/shards.py)

    def __len__(self) -> int:
        return len(self.refs)

    def subset(self, idx: torch.Tensor | list[int], name: str | None = None) -> "FileSplit":
        idx = [int(i) for i in idx]
        return FileSplit([self.refs[i] for i in idx], [self.labels[i] for i in idx], name or self.name, self.root,
                         self.shards)


@dataclass
class DataBundle:
    """A data set as a run uses it. `val` is a val/ folder or images held out of train (the papers'
    protocol); `test` a test/ folder (CIFAR's test set). Training monitors val, else test."""

    name: str
    classes: list[str]
    train: object                   # Split, or a file-backed split (streaming, whole images)
    test: object | None
    val: object | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    small: bool = True              # CIFAR-like (32x32 recipe) rather than ImageNet-like
    info: dict = field(default_factory=dict)

    @property
    def monitor(self):
        """What training evaluates: the validation split, else the test split."""
        return self.val if self.val is not None else self.test

    def split(self, name: str):
        return {"train": self.train, "val": self.val, "test": self.test}[name]
