"""Random streams per (seed, epoch, batch, rank): distinct for every rank, unchanged on rank 0."""
import torch

from reslab.data.loader import batch_generator
from reslab.utils.seeding import batch_seed, step_seed


def test_augmentation_streams_are_distinct_for_64_ranks_over_consecutive_batches():
    firsts = {}
    for epoch in (0, 1):
        for b in range(12):
            for rank in range(64):
                draw = tuple(torch.randint(0, 2**62, (2,), generator=batch_generator(0, epoch, b, rank)).tolist())
                firsts[(epoch, b, rank)] = draw
    assert len(set(firsts.values())) == len(firsts)  # the old packing gave rank 8 at batch b = rank 0 at b + 1


def test_step_streams_are_distinct_above_64_ranks():
    seeds = {step_seed(3, step, rank) for step in range(20) for rank in range(130)}
    assert len(seeds) == 20 * 130


def test_rank_zero_keeps_its_published_streams():
    # single-process runs (every figure in docs/RESULTS.md) draw exactly what they drew before
    assert batch_seed(2, 5, 7, 0) == ((2 * 1_000_003 + 5) * 100_003 + 7) * 8
    assert step_seed(2, 9, 0) == (2 * 1_000_003 + 9) * 64
    assert batch_seed(2, 5, 7, 1) != batch_seed(2, 5, 7, 0) + 1
