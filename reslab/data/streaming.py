"""Decoding in DataLoader workers, batch by batch, for data too big to decode up front: the streamed square
path (data.stream), the whole-image path (data/whole.py subclasses the loader) and evaluation of a
split of files (`reslab eval` reads only that split, in bounded memory). Augmentation then runs batched
on the training device exactly as on the in-memory path, with the same deterministic order."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..errors import ReslabError
from .loader import batch_generator, split_order, steps_per_epoch
from .preprocessing import InputConfig, eval_image
from .types import FileSplit, ImageRef, Split

EVAL_WORKERS = min(8, os.cpu_count() or 1)  # `reslab eval` decodes its split with these


@dataclass
class StreamSplit:
    """Training images decoded per batch as centre squares of `size` (the square path, streamed)."""

    refs: list[ImageRef]
    labels: torch.Tensor
    size: int
    name: str = "train"
    interpolation: str = "bilinear"
    shards: bool = False

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def decode(self, i: int) -> torch.Tensor:
        return eval_image(self.refs[i], InputConfig(self.size, self.size, self.interpolation))


class Decoded(torch.utils.data.Dataset):
    """decode(i) for i in `order`, with the labels: what the workers of one pass compute."""

    def __init__(self, decode: Callable[[int], torch.Tensor], labels: torch.Tensor, order: torch.Tensor) -> None:
        self.decode, self.labels, self.order = decode, labels, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, k: int):
        i = int(self.order[k])
        return self.decode(i), self.labels[i]


@dataclass
class EvalDecode:
    """Image i through the evaluation transform (a class, not a lambda: workers may be spawned); None for an
    unreadable file when skipping them (data.skip_bad), as the decode cache of a training run skips it."""

    refs: list[ImageRef]
    cfg: InputConfig
    skip_bad: bool = False

    def __call__(self, i: int) -> torch.Tensor | None:
        try:
            return eval_image(self.refs[i], self.cfg)
        except ReslabError:
            if not self.skip_bad:
                raise
            return None


def _collate_readable(items: list) -> tuple[torch.Tensor, torch.Tensor] | None:
    kept = [(x, y) for x, y in items if x is not None]
    if not kept:
        return None
    return torch.stack([x for x, _ in kept]), torch.stack([torch.as_tensor(y) for _, y in kept])


def stream_batches(dataset: torch.utils.data.Dataset, batch: int, workers: int, device: torch.device,
                   drop_last: bool, skip_bad: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """uint8 batches decoded by DataLoader workers, in the data set's order, moved to `device`."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers,
                                         drop_last=drop_last, pin_memory=device.type == "cuda",
                                         persistent_workers=False, prefetch_factor=4 if workers else None,
                                         collate_fn=_collate_readable if skip_bad else None)
    for got in loader:
        if got is None:  # every image of the batch was unreadable (skipped)
            continue
        x, y = got
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


class StreamLoader:
    """DeviceLoader's interface (len, epoch) over a split decoded by workers; the device augments."""

    def __init__(self, split, batch_size: int, device: torch.device,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor], *, seed: int = 0, workers: int = 2,
                 rank: int = 0, world: int = 1) -> None:
        self.steps_per_epoch = steps_per_epoch(len(split), batch_size, world)
        self.local_batch = batch_size // world
        self.split, self.device, self.augment, self.workers = split, device, augment, workers
        self.seed, self.rank, self.world = seed, rank, world

    def __len__(self) -> int:
        return self.steps_per_epoch

    def dataset(self, epoch: int, order: torch.Tensor) -> torch.utils.data.Dataset:
        """What the workers decode in `epoch`, sample by sample in `order`."""
        return Decoded(self.split.decode, self.split.labels, order)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = split_order(self.split, self.seed, epoch, self.rank, self.world)
        order = order[start * self.local_batch: self.steps_per_epoch * self.local_batch]
        batches = stream_batches(self.dataset(epoch, order), self.local_batch, self.workers, self.device, True)
        for b, (x, y) in enumerate(batches, start=start):
            yield self.augment(x, batch_generator(self.seed, epoch, b, self.rank)), y


def eval_batches(split: Split | FileSplit, batch_size: int, device: torch.device,
                 prepare: Callable[[torch.Tensor], torch.Tensor], rank: int = 0, world: int = 1,
                 cfg: InputConfig | None = None, skip_bad: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every image once, in order; each rank a contiguous part (metrics are summed across ranks). Files are
    decoded by workers through the evaluation transform of `cfg`, a batch at a time (bounded memory)."""
    n = len(split)
    lo, hi = n * rank // world, n * (rank + 1) // world
    if isinstance(split, FileSplit):
        if cfg is None:
            raise ValueError("evaluating files needs the InputConfig of their transform")
        labels = torch.tensor(split.labels, dtype=torch.int64)
        data = Decoded(EvalDecode(split.refs, cfg, skip_bad), labels, torch.arange(lo, hi))
        for x, y in stream_batches(data, batch_size, EVAL_WORKERS, device, drop_last=False, skip_bad=skip_bad):
            yield prepare(x), y
        return
    for i in range(lo, hi, batch_size):
        j = min(i + batch_size, hi)
        yield prepare(split.images[i:j].to(device, non_blocking=True)), split.labels[i:j].to(device, non_blocking=True)
