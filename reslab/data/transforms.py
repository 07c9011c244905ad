"""Batched tensor transforms that run on the training device (uint8 NCHW in, float out)."""
from __future__ import annotations

import math

import torch

from .preprocessing import center_crop, normalize
from .types import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "center_crop", "normalize"]  # re-exported for callers of this module

# ------------------------------------------------------------------------------------------------
# Batched augmentation. Random parameters come from a CPU generator (a few numbers per batch), so a
# run's augmentation depends only on (seed, epoch, batch) and a resumed run replays it exactly.

def random_crop_flip(images: torch.Tensor, gen: torch.Generator, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """CIFAR recipe: zero-pad `pad` pixels, take a random crop of the original size, flip half."""
    n, c, h, w = images.shape
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flips = (torch.rand(n, generator=gen) < 0.5) if flip else torch.zeros(n, dtype=torch.bool)
    dy, dx, flips = to_device(torch.stack([dy, dx, flips.long()]), images.device)  # one copy, not three syncs
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    rows = (dy[:, None] + torch.arange(h, device=images.device)[None]).view(n, 1, h, 1).expand(n, c, h, w + 2 * pad)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w, device=images.device)[None]).view(n, 1, 1, w).expand(n, c, h, w)
    out = out.gather(3, cols)
    if flip:
        out = torch.where(flips.bool().view(n, 1, 1, 1), out.flip(3), out)
    return out


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor of random draws on the training device: from pinned memory, without waiting for the
    GPU (a plain copy to CUDA synchronises the stream every batch)."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def random_resized_crop(images: torch.Tensor, gen: torch.Generator, size: int, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = True, attempts: int = 10) -> torch.Tensor:
    """Inception-style crop, resized to `size`, on float images (batched affine grids), with torchvision's
    RandomResizedCrop rule per sample: up to 10 attempts at an area uniform in scale * H * W and a
    log-uniform aspect ratio, rounded to whole pixels, the first that fits kept; else the whole image
    clamped to the ratio range, centred; the window at a uniform whole-pixel offset."""
    n, _, h, w = images.shape
    ch, cw = rrc_sizes(gen, n, h, w, scale, ratio, attempts)
    top = torch.floor(torch.rand(n, generator=gen, dtype=torch.float64) * (h - ch + 1))
    left = torch.floor(torch.rand(n, generator=gen, dtype=torch.float64) * (w - cw + 1))
    return _affine_crop(images, gen, left, top, cw, ch, size, flip)


def rrc_sizes(gen: torch.Generator, n: int, h: int, w: int, scale: tuple[float, float] = (0.08, 1.0),
              ratio: tuple[float, float] = (3 / 4, 4 / 3), attempts: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """(crop height, crop width) in whole pixels for n samples of an h x w image, by torchvision's rule."""
    area = h * w * torch.empty(n, attempts, dtype=torch.float64).uniform_(*scale, generator=gen)
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(torch.empty(n, attempts, dtype=torch.float64).uniform_(lo, hi, generator=gen))
    cw, ch = torch.round(torch.sqrt(area * aspect)), torch.round(torch.sqrt(area / aspect))
    fits = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = fits.to(torch.int8).argmax(dim=1, keepdim=True)  # the first attempt that fits
    ch, cw = ch.gather(1, first)[:, 0], cw.gather(1, first)[:, 0]
    if w / h < min(ratio):                 # the fallback: the whole image, clamped to the ratio range
        fh, fw = round(w / min(ratio)), w
    elif w / h > max(ratio):
        fh, fw = h, round(h * max(ratio))
    else:
        fh, fw = h, w
    none = ~fits.any(dim=1)
    return torch.where(none, float(fh), ch), torch.where(none, float(fw), cw)


def scale_augment(images: torch.Tensor, gen: torch.Generator, size: int, shorter: tuple[int, int] = (256, 480),
                  flip: bool = True) -> torch.Tensor:
    """2015 paper: resize the shorter side to a random S in [256, 480], take a random size x size crop."""
    n, _, h, w = images.shape
    s = torch.randint(shorter[0], shorter[1] + 1, (n,), generator=gen).double()
    short = min(h, w)
    cw = (size * short / s).clamp(max=w)  # the window on this image that maps onto size x size
    ch = (size * short / s).clamp(max=h)
    left = torch.rand(n, generator=gen, dtype=torch.float64) * (w - cw)
    top = torch.rand(n, generator=gen, dtype=torch.float64) * (h - ch)
    return _affine_crop(images, gen, left, top, cw, ch, size, flip)


def _affine_crop(images: torch.Tensor, gen: torch.Generator, left: torch.Tensor, top: torch.Tensor, cw: torch.Tensor,
                 ch: torch.Tensor, size: int, flip: bool) -> torch.Tensor:
    """Resample the windows (left, top, width, height; pixels) of each image to size x size, flipped at random."""
    n, _, h, w = images.shape
    sw, sh = cw / w, ch / h                               # half-extents in grid units (the image spans [-1, 1])
    cx, cy = (2 * left + cw) / w - 1, (2 * top + ch) / h - 1
    sx = sw * (torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).double() if flip else 1.0)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, sh, cy
    theta = to_device(theta, images.device).to(images.dtype)
    grid = torch.nn.functional.affine_grid(theta, [n, images.shape[1], size, size], align_corners=False)
    return torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def ten_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """(10, N, C, size, size): four corners + centre, and their mirror images (2012/2015 protocol)."""
    h, w = images.shape[-2:]
    crops = [images[..., :size, :size], images[..., :size, w - size:], images[..., h - size:, :size],
             images[..., h - size:, w - size:], center_crop(images, size)]
    return torch.stack(crops + [c.flip(-1) for c in crops])
