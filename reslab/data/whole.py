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

import io
import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ReslabError
from ..utils.io import atomic_path
from ..utils.progress import Progress
from .cache import fingerprint
from .crops import Crop, sample_crop
from .decode import pil_filter, rgb_array, torch_mode
from .jpeg import decode_scaled, fast_decoder, read_bytes, wanted_size
from .preprocessing import InputConfig, eval_image
from .streaming import StreamLoader
from .types import ImageRef, open_ref

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
    interpolation (Pillow's filters, vectorised: 2-3x faster than Pillow's resize here); nearest picks
    exactly Pillow's source pixels (torch's "nearest-exact" picks a neighbour in a few rows when upsampling)."""
    arr = img if isinstance(img, np.ndarray) else rgb_array(img)
    top, bottom, left, right = window_pixels(crop, orig_size, arr.shape[:2])
    window = arr[top:bottom, left:right]
    if interpolation == "nearest":
        rows, cols = _nearest_index(bottom - top, size), _nearest_index(right - left, size)
        window = window[rows][:, cols]
    window = window if window.flags.writeable and window.flags.c_contiguous else np.array(window)
    x = torch.from_numpy(window).permute(2, 0, 1).unsqueeze(0)
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode=torch_mode(interpolation), antialias=True)
    x = x[0].flip(-1) if crop.flip else x[0]
    return x.contiguous()


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Pillow's NEAREST source index of each output pixel: its affine_scale starts at scale / 2 and adds
    the scale once per pixel (a running sum in double precision, rounding included), then truncates."""
    scale = n_in / n_out
    steps = np.full(n_out, scale)
    steps[0] = scale * 0.5
    return np.minimum(np.cumsum(steps).astype(np.int64), n_in - 1)


def decode_crop(path, crop_of: Callable[[int, int], Crop], size: int, interpolation: str = "bilinear") -> torch.Tensor:
    """Open a file (a path, a shard member or a file object), choose its crop from its size (header only),
    decode just enough of it (data/jpeg.py), crop and resize: a 3 x size x size uint8 tensor."""
    from PIL import Image, UnidentifiedImageError
    source = open_ref(path)
    try:
        if fast_decoder():
            data = read_bytes(source)

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


def build_aspect_cache(paths: list[ImageRef], shorter: int, folder: Path, interpolation: str = "bilinear",
                       workers: int | None = None) -> AspectCache:
    """Decode every image once (shorter side reduced to `shorter` when larger) into FOLDER/KEY.u8 +
    KEY.idx.npy, or reuse them when the files have not changed."""
    key = fingerprint(paths, None, "aspect", shorter, interpolation)
    data_f, index_f = folder / f"{key}.u8", folder / f"{key}.idx.npy"
    if data_f.is_file() and index_f.is_file():
        index = np.load(index_f)
        return AspectCache(np.memmap(data_f, dtype=np.uint8, mode="r"), index, shorter)
    folder.mkdir(parents=True, exist_ok=True)

    def one(p: ImageRef) -> tuple[np.ndarray, tuple[int, int]]:
        from PIL import Image
        with Image.open(open_ref(p)) as img:
            w, h = img.size
            k = shorter / min(w, h)
            if k < 1 and img.format == "JPEG":
                img.draft("RGB", (math.ceil(w * k), math.ceil(h * k)))
            arr = rgb_array(img, p)
            if k < 1:
                nw, nh = max(1, round(w * k)), max(1, round(h * k))
                arr = np.asarray(Image.fromarray(arr).resize((nw, nh), pil_filter(interpolation),
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


# ------------------------------------------------------------------------------------------ data set and loader
@dataclass
class WholeSplit:
    """Training images used whole: files (or shard members), or a keep-aspect cache of them."""

    refs: list[ImageRef]
    labels: torch.Tensor
    kind: str                   # rrc | scale | none (the evaluation transform: resize, centre crop)
    size: int                   # network input
    interpolation: str = "bilinear"
    cache: AspectCache | None = None
    name: str = "train"
    shorter: tuple[int, int] | None = None  # scale augmentation's S range (default from size)
    resize: int = 0             # kind none: the shorter side before the centre crop
    shards: bool = False        # members of tar shards: read in webdataset's order
    min_scale: float = 0.08     # rrc: the smallest share of the image a crop may cover

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def sample(self, seed: int, epoch: int, i: int, size: int = 0) -> torch.Tensor:
        """Sample i of `epoch`: its crop chosen on the original geometry, decoded, resized (to `size`, else
        the network input: progressive resizing cuts smaller crops early), flipped."""
        size = size or self.size
        if self.kind == "none":
            image = self.refs[i] if self.cache is None else self.cache.image(i)
            resize = max(size, (self.resize or self.size) * size // self.size)
            return eval_image(image, InputConfig(size, resize, self.interpolation))

        def crop_of(h, w):
            return sample_crop(self.kind, seed, epoch, i, h, w, size, self.shorter, self.min_scale)
        if self.cache is None:
            return decode_crop(self.refs[i], crop_of, size, self.interpolation)
        w, h = self.cache.original_size(i)
        return crop_resize(self.cache.image(i), (w, h), crop_of(h, w), size, self.interpolation)


class _EpochSamples(torch.utils.data.Dataset):
    def __init__(self, split: WholeSplit, order: torch.Tensor, seed: int, epoch: int, size: int) -> None:
        self.split, self.order, self.seed, self.epoch, self.size = split, order, seed, epoch, size

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, k: int):
        i = int(self.order[k])
        return self.split.sample(self.seed, self.epoch, i, self.size), self.split.labels[i]


class WholeImageLoader(StreamLoader):
    """StreamLoader over a WholeSplit: DataLoader workers choose each sample's crop and decode just that;
    batches reach the device as uint8 crops (normalised there). Order and crops depend on (seed, epoch,
    index) only."""

    def __init__(self, *args, size_at: Callable[[int], int] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.size_at = size_at  # the crop size of an epoch (progressive resizing); None: the split's size

    def dataset(self, epoch: int, order: torch.Tensor) -> torch.utils.data.Dataset:
        size = self.size_at(epoch) if self.size_at is not None else self.split.size
        return _EpochSamples(self.split, order, self.seed, epoch, size)
