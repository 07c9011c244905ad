"""Seeds of the random streams that make a run reproducible and resumable: one stream per
(seed, epoch, batch) for augmentation, one per (seed, step) for dropout / stochastic depth, each
also per DDP rank.

Rank 0 keeps the packed integer it has always used, so single-process results stay exactly as
published. Other ranks get a 63-bit hash of (purpose, that integer, rank): packing the rank into
the low bits of the integer (as before) made rank 8 at batch b draw what rank 0 draws at batch b+1.
"""
from __future__ import annotations

import hashlib


def epoch_seed(seed: int, epoch: int) -> int:
    """The one packing of (seed, epoch or step) every stream starts from: the epoch's sample order uses it
    as it is, the others derive from it."""
    return seed * 1_000_003 + epoch


def batch_seed(seed: int, epoch: int, batch: int, rank: int = 0) -> int:
    """The augmentation stream of one batch on one rank."""
    return _per_rank("batch", (epoch_seed(seed, epoch) * 100_003 + batch) * 8, rank)


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The stream of one training step on one rank (dropout, stochastic depth)."""
    return _per_rank("step", epoch_seed(seed, step) * 64, rank)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The stream of one sample in one epoch (its whole-image crop and flip)."""
    return epoch_seed(seed, epoch) * 4_294_967_311 + index


def _per_rank(purpose: str, base: int, rank: int) -> int:
    if rank == 0:
        return base
    digest = hashlib.blake2b(f"{purpose}|{base}|{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
