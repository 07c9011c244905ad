"""The streaming path: image folders too big for memory. DataLoader workers decode uint8 images
(shorter side resized, centre-cropped to a fixed size); augmentation then runs batched on the
training device exactly as on the in-memory path, with the same deterministic order."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .decode import load_square
from .loader import batch_generator, epoch_order, steps_per_epoch


@dataclass
class StreamSplit:
    paths: list[Path]
    labels: torch.Tensor
    size: int
    name: str = "train"
    interpolation: str = "bilinear"

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)


class SquareFiles(torch.utils.data.Dataset):
    """Image files decoded as centre squares of a fixed size, in a given order."""

    def __init__(self, split: StreamSplit, order: torch.Tensor) -> None:
        self.split, self.order = split, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int):
        j = int(self.order[i])
        return load_square(self.split.paths[j], self.split.size, self.split.interpolation), self.split.labels[j]


def stream_batches(dataset: torch.utils.data.Dataset, batch: int, workers: int, device: torch.device,
                   drop_last: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """uint8 batches decoded by DataLoader workers, in the data set's order, moved to `device`."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers,
                                         drop_last=drop_last, pin_memory=device.type == "cuda",
                                         persistent_workers=False, prefetch_factor=4 if workers else None)
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


class StreamLoader:
    """DeviceLoader's interface (len, order, epoch) over a StreamSplit: workers decode, the device augments."""

    def __init__(self, split: StreamSplit, batch_size: int, device: torch.device,
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
        return SquareFiles(self.split, order)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = epoch_order(len(self.split), self.seed, epoch, self.rank, self.world)
        order = order[start * self.local_batch: self.steps_per_epoch * self.local_batch]
        batches = stream_batches(self.dataset(epoch, order), self.local_batch, self.workers, self.device, True)
        for b, (x, y) in enumerate(batches, start=start):
            yield self.augment(x, batch_generator(self.seed, epoch, b, self.rank)), y
