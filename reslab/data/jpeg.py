"""JPEG decoding for the whole-image path, at a reduced DCT scale when the crop allows it.

Two decoders give the same pixels: Pillow (always there) and, when installed, simplejpeg
(`pip install reslab[fast]`: libjpeg-turbo without Pillow's per-image overhead, 1.5-2x faster on
ImageNet-sized files). Both use libjpeg-turbo's accurate integer IDCT and fancy upsampling, and both
are given the scale Pillow's `draft` would choose, so a run's pixels do not depend on which is
installed (tests/data/test_jpeg.py checks this on real and generated files). Anything simplejpeg
refuses (CMYK, a libjpeg warning on a damaged file, not a JPEG) goes to Pillow, whose behaviour
(decoding through warnings, refusing truncated files) is the reference. RESLAB_JPEG=pillow forces Pillow.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np

try:  # optional accelerator
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the environment
    simplejpeg = None


def draft_scale(w: int, h: int, want_w: int, want_h: int) -> int:
    """The DCT scale (1, 2, 4 or 8) Pillow's JpegImageFile.draft picks for a w x h JPEG asked to be
    at least want_w x want_h: the largest power of two not above min(w // want_w, h // want_h)."""
    scale = min(w // max(1, want_w), h // max(1, want_h))
    return next((s for s in (8, 4, 2) if scale >= s), 1)


def fast_decoder() -> bool:
    """Whether simplejpeg decodes JPEGs here (installed, and not turned off by RESLAB_JPEG=pillow)."""
    return simplejpeg is not None and os.environ.get("RESLAB_JPEG", "").lower() != "pillow"


def decode_scaled(data: bytes, want: Callable[[int, int], tuple]) -> tuple[np.ndarray, tuple[int, int], object] | None:
    """With simplejpeg: read the header, ask `want(h, w)` for (result, want_w, want_h), decode at
    Pillow's draft scale for that. Returns (H x W x 3 uint8 array, (w, h) original, result), or
    None when Pillow should decode this file instead."""
    if not fast_decoder() or not simplejpeg.is_jpeg(data):
        return None
    try:
        h, w, colour, _ = simplejpeg.decode_jpeg_header(data)
        if colour not in ("Gray", "YCbCr", "RGB") or _bomb(w, h):
            return None
        result, want_w, want_h = want(h, w)
        s = draft_scale(w, h, want_w, want_h)
        arr = simplejpeg.decode_jpeg(data, "RGB", min_height=-(-h // s), min_width=-(-w // s), strict=True)
    except ValueError:  # a libjpeg warning or error: Pillow decides what it is
        return None
    return arr, (w, h), result


def _bomb(w: int, h: int) -> bool:
    """Above Pillow's decompression-bomb limit: Pillow refuses it (in its words), as without simplejpeg."""
    from PIL import Image
    return bool(Image.MAX_IMAGE_PIXELS) and w * h > 2 * Image.MAX_IMAGE_PIXELS


def read_bytes(source) -> bytes:
    """The bytes of a path or a file object (the tar-shard reader hands BytesIO)."""
    if hasattr(source, "read"):
        return source.read()
    with open(source, "rb") as f:
        return f.read()


def wanted_size(w: int, h: int, crop_w: float, crop_h: float, size: int) -> tuple[int, int]:
    """The smallest decoded size that keeps at least `size` pixels across the crop window."""
    return math.ceil(w * size / crop_w), math.ceil(h * size / crop_h)
