"""Training crops chosen on each image's own geometry (the whole image, any aspect ratio).

- `rrc`: torchvision's RandomResizedCrop rule, exactly: up to 10 attempts at an area uniform in
  scale * H * W and a log-uniform aspect ratio, rounded to whole pixels, kept if it fits; else the
  fallback: the whole image, clamped to the ratio range, centred.
- `scale`: the 2015 paper's scale augmentation (section 3.4): the shorter side resized to S uniform
  in [256, 480] (scaled with the crop size), a random crop x crop window of that resized image; here
  expressed as the window on the original image that maps onto it.
- a horizontal flip with probability 1/2.

The parameters of sample `index` in `epoch` depend on (seed, epoch, index) only: a resumed run, a
run on any number of processes, and a streamed and a cached run all see the same crops.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..errors import ReslabError
from ..utils.seeding import sample_seed

CROP_KINDS = ("rrc", "scale")  # augment "none" takes the evaluation transform (data/whole.py)


@dataclass(frozen=True)
class Crop:
    """A window (top, left, height, width) on the original image, in pixels (floats allowed), and a flip."""

    top: float
    left: float
    height: float
    width: float
    flip: bool


def sample_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The random stream of one sample in one epoch (Mersenne Twister seeded by a packed integer)."""
    return random.Random(sample_seed(seed, epoch, index))


def rrc_window(rng: random.Random, h: int, w: int, scale: tuple[float, float] = (0.08, 1.0),
               ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """torchvision.transforms.RandomResizedCrop.get_params, drawing from `rng`."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        cw = int(round(math.sqrt(target_area * aspect)))
        ch = int(round(math.sqrt(target_area / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, h - ch), rng.randint(0, w - cw), ch, cw
    in_ratio = w / h  # fallback: the central crop
    if in_ratio < min(ratio):
        cw, ch = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        ch, cw = h, int(round(h * max(ratio)))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def scale_window(rng: random.Random, h: int, w: int, size: int, shorter: tuple[int, int]) -> tuple[float, float, float, float]:
    """The 2015 paper's crop: shorter side to S in [shorter], a size x size window at a random pixel
    offset of the resized image; returned in original-image coordinates."""
    s = rng.randint(shorter[0], shorter[1])
    k = s / min(h, w)                       # resize factor
    rh, rw = max(size, round(h * k)), max(size, round(w * k))
    top, left = rng.randint(0, rh - size), rng.randint(0, rw - size)
    side = size / k  # kept inside the image (rounding the resized size may overhang by under a pixel)
    return min(top / k, max(0.0, h - side)), min(left / k, max(0.0, w - side)), side, side


def sample_crop(kind: str, seed: int, epoch: int, index: int, h: int, w: int, size: int,
                shorter: tuple[int, int] | None = None, min_scale: float = 0.08) -> Crop:
    """The crop of sample `index` in `epoch` for an h x w image and a size x size network input."""
    rng = sample_rng(seed, epoch, index)
    if kind == "rrc":
        top, left, ch, cw = rrc_window(rng, h, w, (min_scale, 1.0))
    elif kind == "scale":
        lo, hi = shorter or (round(size * 256 / 224), round(size * 480 / 224))
        top, left, ch, cw = scale_window(rng, h, w, size, (lo, hi))
    else:
        raise ReslabError(f"crop kind {kind!r}: choose one of {', '.join(CROP_KINDS)}")
    return Crop(top, left, ch, cw, rng.random() < 0.5)
