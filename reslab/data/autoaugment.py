"""TrivialAugment (Mueller & Hutter 2021) and RandAugment (Cubuk et al. 2020), batched on the device.

torchvision's TrivialAugmentWide and RandAugment: the same 14 ops (data/augment_ops.py), the same
31 magnitude bins, nearest interpolation and fill 0; per sample an op (uniform), a magnitude bin
(TrivialAugment: uniform; RandAugment: the fixed `magnitude`) and a sign (negative with probability
1/2 for the signed ops), all drawn from the batch's CPU generator: a run's augmentation stays a
function of (seed, epoch, batch) and a resumed run replays it exactly.
"""
from __future__ import annotations

import torch

from .augment_ops import OPS, apply_ops

NUM_BINS = 31


def magnitude_table(policy: str, num_bins: int, height: int, width: int) -> dict[str, tuple[torch.Tensor | None, bool]]:
    """Per op: (its num_bins magnitudes or None, signed), exactly torchvision's `_AUGMENTATION_SPACE`."""
    wide = policy == "trivial"
    lin = torch.linspace
    enhance = 0.99 if wide else 0.9
    post = 6 if wide else 4
    return {
        "Identity": (None, False),
        "ShearX": (lin(0.0, 0.99 if wide else 0.3, num_bins), True),
        "ShearY": (lin(0.0, 0.99 if wide else 0.3, num_bins), True),
        "TranslateX": (lin(0.0, 32.0 if wide else 150.0 / 331.0 * width, num_bins), True),
        "TranslateY": (lin(0.0, 32.0 if wide else 150.0 / 331.0 * height, num_bins), True),
        "Rotate": (lin(0.0, 135.0 if wide else 30.0, num_bins), True),
        "Brightness": (lin(0.0, enhance, num_bins), True),
        "Color": (lin(0.0, enhance, num_bins), True),
        "Contrast": (lin(0.0, enhance, num_bins), True),
        "Sharpness": (lin(0.0, enhance, num_bins), True),
        "Posterize": ((8 - (torch.arange(num_bins) / ((num_bins - 1) / post))).round().int(), False),
        "Solarize": (lin(1.0, 0.0, num_bins), False),
        "AutoContrast": (None, False),
        "Equalize": (None, False),
    }


def _tables(policy: str, num_bins: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(len(OPS) x num_bins magnitudes as float64, signed flags per op); ops without magnitude: 0."""
    table = magnitude_table(policy, num_bins, h, w)
    mags = torch.zeros(len(OPS), num_bins, dtype=torch.float64)
    signed = torch.zeros(len(OPS), dtype=torch.bool)
    for i, name in enumerate(OPS):
        values, sign = table[name]
        if values is not None:
            mags[i] = values.to(torch.float64)  # float(magnitudes[k]) in torchvision: the float32 value
        signed[i] = sign
    return mags, signed


def sample_trivial(gen: torch.Generator, n: int, h: int, w: int, num_bins: int = NUM_BINS) -> tuple[torch.Tensor, torch.Tensor]:
    """(op index, signed magnitude) for n samples: TrivialAugmentWide's draws."""
    mags, signed = _tables("trivial", num_bins, h, w)
    op = torch.randint(len(OPS), (n,), generator=gen)
    level = torch.randint(num_bins, (n,), generator=gen)
    negative = torch.rand(n, generator=gen) <= 0.5  # torchvision: `if signed and torch.rand(()) <= 0.5`
    m = mags[op, level]
    return op, torch.where(signed[op] & negative, -m, m)


def sample_randaugment(gen: torch.Generator, n: int, h: int, w: int, num_ops: int, magnitude: int,
                       num_bins: int = NUM_BINS) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """num_ops rounds of (op index, signed magnitude) for n samples: RandAugment's draws."""
    mags, signed = _tables("randaugment", num_bins, h, w)
    rounds = []
    for _ in range(num_ops):
        op = torch.randint(len(OPS), (n,), generator=gen)
        negative = torch.rand(n, generator=gen) <= 0.5
        m = mags[op, magnitude]
        rounds.append((op, torch.where(signed[op] & negative, -m, m)))
    return rounds


def trivial_augment(images: torch.Tensor, gen: torch.Generator, num_bins: int = NUM_BINS) -> torch.Tensor:
    """TrivialAugmentWide on a batch (uint8, or float in [0, 1]): one random op and magnitude per sample."""
    op, m = sample_trivial(gen, images.shape[0], images.shape[-2], images.shape[-1], num_bins)
    return apply_ops(images, op, m)


def rand_augment(images: torch.Tensor, gen: torch.Generator, num_ops: int = 2, magnitude: int = 9,
                 num_bins: int = NUM_BINS) -> torch.Tensor:
    """RandAugment on a batch (uint8, or float in [0, 1]): num_ops random ops per sample at a fixed magnitude."""
    if not 0 <= magnitude < num_bins:
        raise ValueError(f"magnitude {magnitude} must be in [0, {num_bins - 1}]")
    for op, m in sample_randaugment(gen, images.shape[0], images.shape[-2], images.shape[-1], num_ops, magnitude,
                                    num_bins):
        images = apply_ops(images, op, m)
    return images


def auto_augment(images: torch.Tensor, gen: torch.Generator, policy: str, num_ops: int = 2,
                 magnitude: int = 9) -> torch.Tensor:
    """policy: none | trivial | randaugment (data.auto_augment)."""
    if policy == "none":
        return images
    if policy == "trivial":
        return trivial_augment(images, gen)
    if policy == "randaugment":
        return rand_augment(images, gen, num_ops, magnitude)
    raise ValueError(f"unknown auto-augment policy {policy!r}")
