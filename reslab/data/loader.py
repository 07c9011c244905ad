"""Batches from a uint8 tensor held on the training device, augmented there in one batched call.

The order of an epoch depends only on (seed, epoch) and each batch's augmentation only on
(seed, epoch, batch index): a run resumed at any step sees exactly the batches it would have seen.
Under DDP every rank draws the same permutation and takes its own stride of it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from ..errors import ReslabError
from ..utils.seeding import batch_seed, epoch_seed
from .shards import shard_epoch_order
from .types import FileSplit, Split

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # uint8 batch -> float batch


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1, shuffle: bool = True) -> torch.Tensor:
    """This rank's sample indices for `epoch`: one permutation shared by all ranks, strided, equal lengths."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch))) if shuffle else torch.arange(n)
    return perm[rank::world][: n // world]


def split_order(split, seed: int, epoch: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """epoch_order, or for tar shards webdataset's two-level shuffle (data/shards.py)."""
    if getattr(split, "shards", False):
        return shard_epoch_order(split, seed, epoch, rank, world)
    return epoch_order(len(split), seed, epoch, rank, world)


def batch_generator(seed: int, epoch: int, batch: int, rank: int = 0) -> torch.Generator:
    """The augmentation randomness of one batch, a function of (seed, epoch, batch, rank) only."""
    return torch.Generator().manual_seed(batch_seed(seed, epoch, batch, rank))


def steps_per_epoch(n: int, batch_size: int, world: int = 1, drop_last: bool = True) -> int:
    """Batches per epoch for each of `world` ranks; a one-line error when the data cannot feed them."""
    if batch_size % world:
        raise ReslabError(f"batch size {batch_size} must be divisible by the number of processes {world}")
    per_rank, local = n // world, batch_size // world
    steps = per_rank // local if drop_last else -(-per_rank // local)
    if steps == 0:
        raise ReslabError(f"{n} training images cannot fill one batch of {batch_size}: lower --batch-size "
                          f"(at most {per_rank * world})")
    return steps


class DeviceLoader:
    def __init__(self, split: Split, batch_size: int, device: torch.device, augment: Augment, *, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = True, rank: int = 0, world: int = 1) -> None:
        self.steps_per_epoch = steps_per_epoch(len(split), batch_size, world, drop_last)
        self.images = split.images.to(device, non_blocking=True)
        self.labels = split.labels.to(device, non_blocking=True)
        self.local_batch = batch_size // world
        self.device, self.augment, self.seed = device, augment, seed
        self.shuffle, self.drop_last, self.rank, self.world = shuffle, drop_last, rank, world
        # decoded tar shards keep their webdataset order (only the members' places are kept for it, not the images)
        self.shards = FileSplit(split.refs, [], split.name, Path("."), True) if split.shards and shuffle else None

    def __len__(self) -> int:
        return self.steps_per_epoch

    def order(self, epoch: int) -> torch.Tensor:
        if self.shards is not None:
            return split_order(self.shards, self.seed, epoch, self.rank, self.world)
        return epoch_order(len(self.labels), self.seed, epoch, self.rank, self.world, self.shuffle)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of `epoch` from batch index `start` on."""
        idx = self.order(epoch).to(self.device)
        for b in range(start, self.steps_per_epoch):
            sel = idx[b * self.local_batch:(b + 1) * self.local_batch]
            yield self.augment(self.images[sel], batch_generator(self.seed, epoch, b, self.rank)), self.labels[sel]
