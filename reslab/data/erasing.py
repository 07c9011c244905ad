"""Random erasing (Zhong et al. 2017) on a normalised float batch, batched, with timm's rule.

Per sample, with probability p: up to 10 attempts at an area uniform in [0.02, 1/3] of the image and
a log-uniform aspect ratio in [0.3, 1/0.3], rounded to whole pixels; the first box strictly smaller
than the image is kept (none fits: nothing erased), at a uniform whole-pixel position. The box is
filled with 0 (`const`: the mean after normalisation), per-pixel normal noise (`pixel`, timm's
`re_mode` of its recipes) or one normal value per channel (`rand`). All draws come from the batch's
CPU generator, so a resumed run erases the same boxes.
"""
from __future__ import annotations

import math

import torch

MODES = ("pixel", "const", "rand")


def erase_boxes(gen: torch.Generator, n: int, h: int, w: int, p: float, area: tuple[float, float] = (0.02, 1 / 3),
                aspect: tuple[float, float] = (0.3, 1 / 0.3), attempts: int = 10) -> tuple[torch.Tensor, ...]:
    """(erase?, top, left, height, width) per sample, int64 tensors (erase: bool)."""
    apply = torch.rand(n, generator=gen, dtype=torch.float64) < p
    target = h * w * torch.empty(n, attempts, dtype=torch.float64).uniform_(*area, generator=gen)
    ratio = torch.exp(torch.empty(n, attempts, dtype=torch.float64).uniform_(math.log(aspect[0]), math.log(aspect[1]),
                                                                           generator=gen))
    bh, bw = torch.round(torch.sqrt(target * ratio)), torch.round(torch.sqrt(target / ratio))
    fits = (bw < w) & (bh < h)
    first = fits.to(torch.int8).argmax(dim=1, keepdim=True)  # the first attempt that fits
    bh, bw = bh.gather(1, first)[:, 0], bw.gather(1, first)[:, 0]
    apply &= fits.any(dim=1)
    top = torch.floor(torch.rand(n, generator=gen, dtype=torch.float64) * (h - bh + 1))
    left = torch.floor(torch.rand(n, generator=gen, dtype=torch.float64) * (w - bw + 1))
    return apply, top.long(), left.long(), bh.long(), bw.long()


def _normal(shape: tuple[int, ...], gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise on like's device: from gen on the CPU; elsewhere from a device generator
    seeded by gen (drawing millions of numbers on the CPU and copying them would cost more)."""
    if like.device.type == "cpu":
        return torch.randn(shape, generator=gen, dtype=like.dtype)
    seed = int(torch.randint(2**62, (1,), generator=gen))
    dev_gen = torch.Generator(device=like.device).manual_seed(seed)
    return torch.randn(shape, generator=dev_gen, device=like.device, dtype=like.dtype)


def random_erasing(x: torch.Tensor, gen: torch.Generator, p: float, mode: str = "pixel") -> torch.Tensor:
    """Erase one random box in each sample with probability p (a new tensor; x is not modified)."""
    if mode not in MODES:
        raise ValueError(f"random erasing mode {mode!r}: choose one of {', '.join(MODES)}")
    if p <= 0:
        return x
    n, c, h, w = x.shape
    apply, top, left, bh, bw = erase_boxes(gen, n, h, w, p)
    idx = apply.nonzero()[:, 0]
    if len(idx) == 0:
        return x
    k = len(idx)
    rows, cols = torch.arange(h), torch.arange(w)
    in_rows = (rows >= top[idx, None]) & (rows < (top + bh)[idx, None])
    in_cols = (cols >= left[idx, None]) & (cols < (left + bw)[idx, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :]).view(k, 1, h, w).to(x.device)
    if mode == "pixel":
        fill = _normal((k, c, h, w), gen, x)
    elif mode == "rand":
        fill = _normal((k, c, 1, 1), gen, x)
    else:
        fill = torch.zeros((), dtype=x.dtype, device=x.device)
    dev_idx = idx.to(x.device)
    out = x.clone()
    out.index_copy_(0, dev_idx, torch.where(mask, fill, x.index_select(0, dev_idx)))
    return out
