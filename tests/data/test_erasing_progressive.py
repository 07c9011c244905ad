"""Random erasing (timm's rule, batched) and progressive resizing (FFCV's rule)."""
import math

import numpy as np
import pytest
import torch

from reslab.data.erasing import erase_boxes, random_erasing
from reslab.data.progressive import progressive_size


def test_erase_boxes_area_aspect_and_probability():
    n, h, w = 20_000, 64, 48
    apply, top, left, bh, bw = erase_boxes(torch.Generator().manual_seed(0), n, h, w, p=0.5)
    assert abs(apply.double().mean().item() - 0.5) < 0.02
    area = (bh * bw).double() / (h * w)
    # whole-pixel rounding moves a side by at most half a pixel
    lo = ((bh - 0.5).clamp(min=0) * (bw - 0.5).clamp(min=0)).double() / (h * w)
    hi = ((bh + 0.5) * (bw + 0.5)).double() / (h * w)
    assert (hi >= 0.02).all() and (lo <= 1 / 3).all()
    assert area[apply].min() < 0.03 and area[apply].max() > 0.3    # the whole range is used
    ratio_hi = (bh + 0.5) / (bw - 0.5).clamp(min=0.5)
    ratio_lo = (bh - 0.5).clamp(min=0) / (bw + 0.5)
    assert (ratio_hi >= 0.3).all() and (ratio_lo <= 1 / 0.3).all()
    assert ((bh < h) & (bw < w))[apply].all()                       # strictly inside, as timm requires
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h).all() and (left + bw <= w).all()
    assert top[apply].max() == (h - bh[apply]).max() or top.max() > 0  # positions reach the far edge


@pytest.mark.parametrize("mode", ["pixel", "const", "rand"])
def test_random_erasing_erases_one_box_reproducibly(mode):
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1)) + 10  # no zeros, no noise-like values
    a = random_erasing(x, torch.Generator().manual_seed(2), 1.0, mode)
    b = random_erasing(x, torch.Generator().manual_seed(2), 1.0, mode)
    assert torch.equal(a, b) and not torch.equal(a, x) and torch.equal(x[0], x[0])  # x itself untouched
    _, top, left, bh, bw = erase_boxes(torch.Generator().manual_seed(2), 8, 32, 32, 1.0)
    for i in range(8):
        changed = (a[i] != x[i]).any(0)
        box = torch.zeros(32, 32, dtype=torch.bool)
        box[top[i]:top[i] + bh[i], left[i]:left[i] + bw[i]] = True
        assert torch.equal(changed, box), i
        inside = a[i][:, box]
        if mode == "const":
            assert (inside == 0).all()
        elif mode == "rand":
            assert (inside == inside[:, :1]).all()                   # one value per channel
        else:
            assert inside.abs().max() < 6 and inside.std() > 0.5     # standard normal noise


def test_random_erasing_off_and_probability_zero_draw_nothing():
    x = torch.randn(4, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert random_erasing(x, g, 0.0) is x and torch.equal(g.get_state(), state)
    with pytest.raises(ValueError, match="mode"):
        random_erasing(x, g, 0.5, "noise")


def _ffcv_reference(epoch, min_res, max_res, end_ramp, start_ramp):
    """ffcv-imagenet's get_resolution, verbatim in substance."""
    if epoch <= start_ramp:
        return min_res
    if epoch >= end_ramp:
        return max_res
    interp = np.interp([epoch], [start_ramp, end_ramp], [min_res, max_res])
    return int(np.round(interp[0] / 32)) * 32


@pytest.mark.parametrize("min_res,max_res,start,end", [(160, 192, 65, 76), (160, 224, 10, 30), (96, 128, 0, 4),
                                                       (128, 256, 2, 13), (192, 192, 0, 5)])
def test_progressive_size_is_ffcvs_rule(min_res, max_res, start, end):
    for epoch in range(0, end + 5):
        assert progressive_size(epoch, min_res, max_res, start, end) == _ffcv_reference(epoch, min_res, max_res,
                                                                                         end, start), epoch


def test_progressive_size_small_images_stay_in_range():
    sizes = [progressive_size(e, 8, 16, 0, 4) for e in range(6)]  # FFCV's rounding alone: 8, 0, 0, 0, 16
    assert sizes[0] == 8 and sizes[-1] == 16 and all(8 <= s <= 16 for s in sizes)
    assert [progressive_size(e, 16, 48, 0, 8) for e in (0, 1, 8)] == [16, 32, 48]
    with pytest.raises(ValueError):
        progressive_size(0, 64, 32, 0, 1)
    assert math.isfinite(progressive_size(3, 160, 192, 0, 10))
