"""Progressive resizing (FFCV's ImageNet recipe): small training images early, the full size at the end.

The resolution is a pure function of the epoch (ffcv-imagenet's `get_resolution`): `min_res` up to
epoch `start_ramp`, then a linear ramp rounded to a multiple of 32 (kept within [min_res, max_res]),
`max_res` from epoch `end_ramp` on. A resumed run therefore sees the resolution an uninterrupted one saw.
"""
from __future__ import annotations


def progressive_size(epoch: int, min_res: int, max_res: int, start_ramp: int, end_ramp: int, multiple: int = 32) -> int:
    """The training resolution of `epoch` (0-based) by FFCV's rule."""
    if min_res > max_res:
        raise ValueError(f"min_res {min_res} > max_res {max_res}")
    if epoch <= start_ramp:
        return min_res
    if epoch >= end_ramp:
        return max_res
    slope = (max_res - min_res) / (end_ramp - start_ramp)  # np.interp's arithmetic, so ties round alike
    interp = slope * (epoch - start_ramp) + min_res
    size = int(round(interp / multiple)) * multiple  # round(): half to even, as np.round
    # FFCV's sizes are multiples of 32, so this never binds there; for small images it keeps the ramp
    # inside [min_res, max_res] (an 8 -> 16 ramp would otherwise pass through 0)
    return min(max(size, min_res), max_res)
