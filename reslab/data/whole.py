"""Training on whole images: each sample's crop is chosen on the original image (data/crops.py), then
only that window is decoded and resized to the network input.

Decoding is the cost, so it is kept small: a JPEG is decoded at 1/2, 1/4 or 1/8 scale when the window
still has at least the output's pixels there (Pillow's `draft`, the DCT scaling of libjpeg); the window
is then resampled by torch's uint8 antialiased interpolation (Pillow's filters, vectorised). The keep-aspect cache
(`AspectCache`) decodes every image once to uint8 at a bounded shorter side, aspect kept, in one
memory-mapped file: later epochs do no JPEG decoding at all (the idea behind FFCV and DALI).

The same function cuts a crop from a file or from the cache, so where the cache holds an image at
its own size (images no larger than the cache's shorter side), streamed and cached runs are identical.
"""
from __future__ import annotations

import hashlib
import io
import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ReslabError
from ..utils.io import atomic_path
from ..utils.progress import Progress
from .crops import Crop, sample_crop
from .decode import _pil_filter, check_interpolation, rgb_array
from .jpeg import decode_scaled, fast_decoder, read_bytes, wanted_size
from .streaming import StreamLoader

log = logging.getLogger(__name__)
REDUCING_GAP = 3.0  # building the cache: Pillow reduce()s by an integer factor first when shrinking 3x or more


def window_pixels(crop: Crop, orig_size: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The crop window (original-image coordinates) on an image of `shape` (h, w) that may be a scaled
    version of the original (a DCT-scaled decode, a cache entry), snapped to its pixel grid:
    (top, bottom, left, right), at least one pixel each way."""
    (ow, oh), (h, w) = orig_size, shape
    sx, sy = w / ow, h / oh
    left, top = min(w - 1, max(0, round(crop.left * sx))), min(h - 1, max(0, round(crop.top * sy)))
    right = min(w, max(left + 1, round((crop.left + crop.width) * sx)))
    bottom = min(h, max(top + 1, round((crop.top + crop.height) * sy)))
    return top, bottom, left, right


def crop_resize(img, orig_size: tuple[int, int], crop: Crop, size: int, interpolation: str = "bilinear") -> torch.Tensor:
    """The crop window resized to size x size, flipped if asked: a 3 x size x size uint8 tensor. `img`
    (a Pillow image or an H x W x 3 uint8 array) may be a scaled version of the original image.

    The window is cut on whole pixels of `img` and resampled by torch's uint8 antialiased
    interpolation (Pillow's filters, vectorised: 2-3x faster than Pillow's resize here)."""
    check_interpolation(interpolation)
    arr = img if isinstance(img, np.ndarray) else rgb_array(img)
    top, bottom, left, right = window_pixels(crop, orig_size, arr.shape[:2])
    window = arr[top:bottom, left:right]
    window = window if window.flags.writeable and window.flags.c_contiguous else np.array(window)
    x = torch.from_numpy(window).permute(2, 0, 1).unsqueeze(0)
    if x.shape[-2:] != (size, size):
        aa = {"antialias": True} if interpolation != "nearest" else {}
        x = torch.nn.functional.interpolate(x, size=(size, size), mode=interpolation, **aa)
    x = x[0].flip(-1) if crop.flip else x[0]
    return x.contiguous()


def decode_crop(path, crop_of: Callable[[int, int], Crop], size: int, interpolation: str = "bilinear") -> torch.Tensor:
    """Open a file (a path or a file object), choose its crop from its size (header only), decode just
    enough of it (data/jpeg.py), crop and resize: a 3 x size x size uint8 tensor."""
    from PIL import Image, UnidentifiedImageError
    source = path
    try:
        if fast_decoder():
            data = read_bytes(path)

            def plan(h: int, w: int):
                crop = crop_of(h, w)
                return (crop, *wanted_size(w, h, crop.width, crop.height, size))
            got = decode_scaled(data, plan)
            if got is not None:
                arr, orig, crop = got
                return crop_resize(arr, orig, crop, size, interpolation)
            source = io.BytesIO(data)
        with Image.open(source) as img:
            w, h = img.size
            crop = crop_of(h, w)
            if img.format == "JPEG":  # decode at the smallest DCT scale that keeps >= size pixels in the window
                img.draft("RGB", wanted_size(w, h, crop.width, crop.height, size))
            return crop_resize(img, (w, h), crop, size, interpolation)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ReslabError(f"cannot read image {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


# ------------------------------------------------------------------------------------------ the cache
@dataclass
class AspectCache:
    """uint8 images at a bounded shorter side, aspect kept, concatenated in one memory-mapped file;
    `index` rows are (offset, height, width, original height, original width)."""

    data: np.ndarray
    index: np.ndarray
    shorter: int

    def __len__(self) -> int:
        return len(self.index)

    def image(self, i: int) -> np.ndarray:
        """Image i as stored: an h x w x 3 uint8 view of the memory-mapped file."""
        off, h, w, _, _ = (int(v) for v in self.index[i])
        return np.asarray(self.data[off:off + h * w * 3]).reshape(h, w, 3)

    def original_size(self, i: int) -> tuple[int, int]:
        return int(self.index[i, 4]), int(self.index[i, 3])  # (width, height)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)


def build_aspect_cache(paths: list[Path], shorter: int, folder: Path, interpolation: str = "bilinear",
                       workers: int | None = None) -> AspectCache:
    """Decode every image once (shorter side reduced to `shorter` when larger) into FOLDER/KEY.u8 +
    KEY.idx.npy, or reuse them when the files have not changed."""
    key = _fingerprint(paths, shorter, interpolation)
    data_f, index_f = folder / f"{key}.u8", folder / f"{key}.idx.npy"
    if data_f.is_file() and index_f.is_file():
        index = np.load(index_f)
        return AspectCache(np.memmap(data_f, dtype=np.uint8, mode="r"), index, shorter)
    folder.mkdir(parents=True, exist_ok=True)

    def one(p: Path) -> tuple[np.ndarray, tuple[int, int]]:
        from PIL import Image
        with Image.open(p) as img:
            w, h = img.size
            k = shorter / min(w, h)
            if k < 1 and img.format == "JPEG":
                img.draft("RGB", (math.ceil(w * k), math.ceil(h * k)))
            arr = rgb_array(img, p)
            if k < 1:
                nw, nh = max(1, round(w * k)), max(1, round(h * k))
                arr = np.asarray(Image.fromarray(arr).resize((nw, nh), _pil_filter(interpolation),
                                                              reducing_gap=REDUCING_GAP))
        return arr, (h, w)

    bar = Progress(len(paths), desc=f"cache (shorter side {shorter})", unit="img")
    index = np.zeros((len(paths), 5), dtype=np.int64)
    try:
        with atomic_path(data_f) as tmp, open(tmp, "wb") as f, ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
            off = 0
            for i, (arr, (oh, ow)) in enumerate(pool.map(_guarded(one), paths)):
                f.write(np.ascontiguousarray(arr).tobytes())
                index[i] = (off, arr.shape[0], arr.shape[1], oh, ow)
                off += arr.size
                bar.update(i + 1)
        with atomic_path(index_f) as tmp, open(tmp, "wb") as f:
            np.save(f, index)
    finally:
        bar.close()
    return AspectCache(np.memmap(data_f, dtype=np.uint8, mode="r"), index, shorter)


def _guarded(fn):
    def run(p):
        try:
            return fn(p)
        except (OSError, ValueError, SyntaxError) as e:
            raise ReslabError(f"cannot read image {p}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return run


def _fingerprint(paths: list[Path], shorter: int, interpolation: str) -> str:
    h = hashlib.sha256(f"aspect-v1|{shorter}|{interpolation}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


# ------------------------------------------------------------------------------------------ data set and loader
@dataclass
class WholeSplit:
    """Training images used whole: files, or a keep-aspect cache of them."""

    paths: list[Path]
    labels: torch.Tensor
    kind: str                   # rrc | scale
    size: int                   # network input
    interpolation: str = "bilinear"
    cache: AspectCache | None = None
    name: str = "train"
    shorter: tuple[int, int] | None = None  # scale augmentation's S range (default from size)
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def sample(self, seed: int, epoch: int, i: int) -> torch.Tensor:
        """Sample i of `epoch`: its crop chosen on the original geometry, decoded, resized, flipped."""
        def crop_of(h, w):
            return sample_crop(self.kind, seed, epoch, i, h, w, self.size, self.shorter)
        if self.cache is None:
            return decode_crop(self.paths[i], crop_of, self.size, self.interpolation)
        w, h = self.cache.original_size(i)
        return crop_resize(self.cache.image(i), (w, h), crop_of(h, w), self.size, self.interpolation)


class _EpochSamples(torch.utils.data.Dataset):
    def __init__(self, split: WholeSplit, order: torch.Tensor, seed: int, epoch: int) -> None:
        self.split, self.order, self.seed, self.epoch = split, order, seed, epoch

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, k: int):
        i = int(self.order[k])
        return self.split.sample(self.seed, self.epoch, i), self.split.labels[i]


class WholeImageLoader(StreamLoader):
    """StreamLoader over a WholeSplit: DataLoader workers choose each sample's crop and decode just that;
    batches reach the device as uint8 crops (normalised there). Order and crops depend on (seed, epoch,
    index) only."""

    def dataset(self, epoch: int, order: torch.Tensor) -> torch.utils.data.Dataset:
        return _EpochSamples(self.split, order, self.seed, epoch)
