"""Turn a `--data` value into uint8 train / validation / test tensors.

Accepted: "digits" (the offline default), "cifar10[:DIR]" / "cifar100[:DIR]" (official python
format), a folder-per-class tree (ROOT/train/<class>/*, ROOT/val|test/<class>/*), or tar archives of
such a tree (comma-separated), which are extracted once into the cache.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ReslabError
from .archives import extract_archives
from .cache import cached_folder, default_cache_dir
from .cifar import download_cifar, find_cifar_root, load_cifar
from .folder import scan_image_folder
from .streaming import StreamSplit
from .transforms import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
DIGITS_MEAN, DIGITS_STD = (0.30,) * 3, (0.38,) * 3


@dataclass
class Split:
    images: torch.Tensor  # uint8 (N, 3, H, W), CPU
    labels: torch.Tensor  # int64 (N,)
    name: str = "train"

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: torch.Tensor, name: str | None = None) -> "Split":
        return Split(self.images[idx], self.labels[idx], name or self.name)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


@dataclass
class DataBundle:
    name: str
    classes: list[str]
    train: Split
    test: Split | None
    val: Split | None = None  # held out of train (paper protocol); None: monitor the test split
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    small: bool = True  # CIFAR-like (32x32 recipe) rather than ImageNet-like
    info: dict = field(default_factory=dict)

    @property
    def monitor(self) -> Split | None:
        """What training evaluates: the held-out validation split, else the test split."""
        return self.val if self.val is not None else self.test


def load_data(spec: str | None, *, cache_size: int | None = None, val_split: int = 0, download: bool = False,
              skip_bad: bool = False, cache_dir: str | None = None, seed: int = 0, stream: bool = False,
              train_subset: int = 0, eval_subset: int = 0, interpolation: str = "bilinear",
              whole: dict | None = None) -> DataBundle:
    """`whole`: train on whole images, {"augment": rrc|scale, "crop": 224, "cache_shorter": 0|N}
    (folder and archive data only; evaluation images are resized to cache_size and centre-cropped)."""
    spec = spec or "digits"
    if spec == "digits":
        from .digits import load_digits_split
        tr, te = load_digits_split("train"), load_digits_split("test")
        bundle = DataBundle("digits", tr[2], Split(tr[0], tr[1]), Split(te[0], te[1], "test"),
                            mean=DIGITS_MEAN, std=DIGITS_STD)
    else:
        bundle = _load_cifar_spec(spec, download)
        if bundle is not None and whole:
            raise ReslabError("data.input=whole reads image files (folders, archives); CIFAR's arrays are whole already")
        if bundle is None and whole:
            from .whole_sources import load_whole
            bundle = load_whole(spec, whole, cache_size, cache_dir, interpolation, skip_bad)
        elif bundle is None:
            bundle = _load_folder_spec(spec, cache_size, skip_bad, cache_dir, stream, interpolation)
    if val_split:
        bundle = hold_out(bundle, val_split, seed)
    if train_subset or eval_subset:
        bundle = take_subsets(bundle, train_subset, eval_subset, seed)
    return bundle


def take_subsets(bundle: DataBundle, n_train: int, n_eval: int, seed: int = 0) -> DataBundle:
    """Fixed random subsets (quick experiments): n_train training images, n_eval of each evaluation split."""
    def pick(split, n, salt):
        if not n or split is None or n >= len(split):
            return split
        if not isinstance(split, Split):
            raise ReslabError("data subsets work with in-memory data, not with data.stream or data.input=whole")
        idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(20_011 * salt + seed))[:n]
        return split.subset(idx.sort().values)
    bundle.train = pick(bundle.train, n_train, 1)
    bundle.val, bundle.test = pick(bundle.val, n_eval, 2), pick(bundle.test, n_eval, 3)
    return bundle


def hold_out(bundle: DataBundle, n: int, seed: int = 0) -> DataBundle:
    """The paper's protocol: `n` training images become the validation split (fixed by `seed`)."""
    if not 0 < n < len(bundle.train):
        raise ReslabError(f"val_split={n} must be between 1 and {len(bundle.train) - 1} (training images)")
    if not isinstance(bundle.train, Split):
        raise ReslabError("data.val_split works with in-memory data; with data.stream or data.input=whole use a "
                          "val/ folder")
    order = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(10_007 + seed))
    bundle.val = bundle.train.subset(order[:n], "val")
    bundle.train = bundle.train.subset(order[n:], "train")
    return bundle


def _load_cifar_spec(spec: str, download: bool) -> DataBundle | None:
    name, _, path = spec.partition(":")
    if name not in ("cifar10", "cifar100"):
        p = Path(spec)
        name = next((n for n in ("cifar10", "cifar100") if p.is_dir() and find_cifar_root(p, n)), "")
        if not name:
            return None
        path = spec
    root = Path(path or default_cache_dir() / "data")
    if download:
        download_cifar(root, name)
    xtr, ytr, classes = load_cifar(root, name, "train")
    xte, yte, _ = load_cifar(root, name, "test")
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if name == "cifar10" else (CIFAR100_MEAN, CIFAR100_STD)
    return DataBundle(name, classes, Split(xtr, ytr), Split(xte, yte, "test"), mean=mean, std=std)


def _load_folder_spec(spec: str, cache_size: int | None, skip_bad: bool, cache_dir: str | None,
                      stream: bool = False, interpolation: str = "bilinear") -> DataBundle:
    parts = [Path(p) for p in spec.split(",")]
    for p in parts:
        if not p.exists():
            raise ReslabError(f"--data {p}: no such file or folder; use 'digits', 'cifar10[:DIR]', 'cifar100[:DIR]', "
                              f"a folder with train/<class>/ and val/<class>/ (or test/), or tar archives of one")
    root = extract_archives(parts, cache_dir) if all(p.is_file() for p in parts) else parts[0]
    eval_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    # ROOT/train + ROOT/val|test, or ROOT/<class> (training only), or ROOT/val|test alone (evaluation only)
    train_dir = root / "train" if (root / "train").is_dir() else (eval_dir if eval_dir is not None else root)
    eval_only = train_dir == eval_dir
    train_idx = scan_image_folder(train_dir)
    eval_idx = scan_image_folder(eval_dir) if eval_dir is not None else None
    if eval_idx is not None and eval_idx.classes != train_idx.classes:
        raise ReslabError(f"{eval_dir} and {train_dir} have different class folders")
    size = cache_size or _native_size(train_idx.paths[0])
    if stream:  # decoded per batch by DataLoader workers (data.stream)
        train = StreamSplit(train_idx.paths, torch.tensor(train_idx.labels), size, interpolation=interpolation)
        test = (StreamSplit(eval_idx.paths, torch.tensor(eval_idx.labels), size, eval_dir.name, interpolation)
                if eval_idx else None)
    else:
        xtr, ytr = cached_folder(train_idx, size, cache_dir and Path(cache_dir), skip_bad, interpolation)
        train, test = Split(xtr, ytr), None
        if eval_idx is not None:
            xte, yte = cached_folder(eval_idx, size, cache_dir and Path(cache_dir), skip_bad, interpolation)
            test = Split(xte, yte, eval_dir.name)
    small = size <= 64
    name = parts[0].name.split(".")[0] if parts[0].is_file() else root.name
    return DataBundle(name, train_idx.classes, train, test, small=small,
                      info={"root": str(root), "cache_size": size, "eval_only": eval_only})


def _native_size(path: Path) -> int:
    from PIL import Image
    with Image.open(path) as img:
        return min(img.size)
