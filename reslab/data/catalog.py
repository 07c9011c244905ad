"""What a `--data` value holds, found without decoding a single image: the class names and, per split,
the image files (or shard members) with their labels, or the arrays of CIFAR and the digits.

Accepted: "digits" (the offline default), "cifar10[:DIR]" / "cifar100[:DIR]" (official python
format), a folder (ROOT/train/<class>/*, ROOT/val/ and/or ROOT/test/ with class folders or flat with
ImageNet's ground truth beside them; ROOT/<class>/* alone is a training set), tar archives of such a
tree (extracted once into the cache), and WebDataset tar shards (data/shards.py).

Every command reads data through here: a training run, `reslab eval` (which then decodes only the
split it evaluates), export's check, the analyses. Split names are what the data calls them: a val/
folder is "val", a test/ folder "test", images held out of train (data.val_split) "val".
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..errors import ReslabError
from .archives import extract_archives
from .cifar import download_cifar, find_cifar_root, load_cifar
from .folder import compare_classes, scan_image_folder
from .layouts import flat_val_labels, is_flat_image_folder, synset_order, SYNSETS, find_beside
from .shards import is_shard_set, load_shard_splits
from .types import IMAGENET_MEAN, IMAGENET_STD, FileSplit, Split, default_cache_dir

log = logging.getLogger(__name__)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
DIGITS_MEAN, DIGITS_STD = (0.30,) * 3, (0.38,) * 3


@dataclass
class Catalog:
    """A data set's splits, undecoded (FileSplit) or as arrays (Split)."""

    name: str
    classes: list[str]
    splits: dict[str, Split | FileSplit]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    root: Path | None = None
    errors: dict[str, str] = field(default_factory=dict)  # splits found but unreadable (e.g. no ground truth)

    @property
    def arrays(self) -> bool:
        return any(isinstance(s, Split) for s in self.splits.values())

    def split(self, name: str) -> Split | FileSplit | None:
        if name in self.errors:
            raise ReslabError(self.errors[name])
        return self.splits.get(name)

    def evaluation_split(self) -> str | None:
        """What a run on this data monitors: val, else test."""
        return next((n for n in ("val", "test") if n in self.splits), None)


def locate(spec: str | None, cache_dir: str | None = None, download: bool = False) -> Catalog:
    spec = spec or "digits"
    if spec == "digits":
        from .digits import load_digits_split
        tr, te = load_digits_split("train"), load_digits_split("test")
        return Catalog("digits", tr[2], {"train": Split(tr[0], tr[1]), "test": Split(te[0], te[1], "test")},
                       DIGITS_MEAN, DIGITS_STD)
    cifar = _cifar(spec, download)
    if cifar is not None:
        return cifar
    parts = [Path(p) for p in spec.split(",")]
    for p in parts:
        if not p.exists():
            raise ReslabError(f"--data {p}: no such file or folder; use 'digits', 'cifar10[:DIR]', 'cifar100[:DIR]', "
                              f"a folder with train/<class>/ and val/<class>/ (or test/), tar archives of one, or "
                              f"WebDataset shards (train-*.tar)")
    if is_shard_set(parts):
        name, classes, splits = load_shard_splits(parts, Path(cache_dir or default_cache_dir()))
        return Catalog(name, classes, splits, root=parts[0] if parts[0].is_dir() else parts[0].parent)
    if all(p.is_file() for p in parts):
        root = extract_archives(parts, cache_dir)
        name = parts[0].name.split(".")[0]
    elif len(parts) == 1:
        root, name = parts[0], parts[0].resolve().name
    else:
        raise ReslabError(f"--data {spec}: give one folder, or tar archives separated by commas")
    return _folder(root, name)


def _cifar(spec: str, download: bool) -> Catalog | None:
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
    return Catalog(name, classes, {"train": Split(xtr, ytr), "test": Split(xte, yte, "test")}, mean, std, root)


def _folder(root: Path, name: str) -> Catalog:
    """ROOT/train + ROOT/val and/or ROOT/test; ROOT/<class> alone (training); ROOT/val|test alone (evaluation)."""
    evals = [d for d in ("val", "test") if (root / d).is_dir()]
    train_dir = root / "train" if (root / "train").is_dir() else (None if evals else root)
    splits: dict[str, FileSplit] = {}
    errors: dict[str, str] = {}
    classes: list[str] | None = None
    if train_dir is not None:
        index = scan_image_folder(train_dir)
        classes = index.classes
        splits["train"] = FileSplit(list(index.paths), index.labels, "train", train_dir)
    for d in evals:
        folder = root / d
        if is_flat_image_folder(folder):
            try:
                cls = classes or _flat_classes(folder)
                files, labels = flat_val_labels(folder, cls)
            except ReslabError as e:  # e.g. Kaggle's unlabelled test/ beside a labelled val/
                errors[d] = str(e)
                continue
            classes = cls
            splits[d] = FileSplit(list(files), labels, d, folder)
        else:
            index = scan_image_folder(folder, allow_empty=True)
            if classes is not None:
                compare_classes(folder, index.classes, train_dir or root / evals[0], classes)
            classes = classes or index.classes
            splits[d] = FileSplit(list(index.paths), index.labels, d, folder)
    if not splits:
        raise ReslabError(next(iter(errors.values())) if errors else f"--data {root}: no images found")
    return Catalog(name, classes or [], splits, root=root, errors=errors)


def _flat_classes(folder: Path) -> list[str]:
    """The class order of a flat validation folder with no train/ beside it: LOC_synset_mapping.txt."""
    mapping = find_beside(SYNSETS, folder)
    if mapping is None:
        raise ReslabError(f"{folder} holds images without class folders and there is no train/ beside it to take the "
                          f"classes from: put {SYNSETS} (Kaggle) beside it, or evaluate with train/ present")
    return synset_order(mapping)


# ------------------------------------------------------------------------------------------- held-out splits
def hold_out(cat: Catalog, n: int, seed: int = 0) -> Catalog:
    """The papers' protocol: `n` training images become the validation split (fixed by `seed`)."""
    train = cat.splits.get("train")
    if train is None:
        raise ReslabError("data.val_split holds out training images, but the data has no train split")
    if not 0 < n < len(train):
        raise ReslabError(f"val_split={n} must be between 1 and {len(train) - 1} (training images)")
    if "val" in cat.splits:
        raise ReslabError(f"data.val_split={n} holds out training images as the validation split, but the data has a "
                          f"val split already ({cat.splits['val'].name}/): use one or the other")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(10_007 + seed))
    splits = dict(cat.splits)
    rest = order[n:].sort().values if getattr(train, "shards", False) else order[n:]  # shards: file order, so
    splits["val"] = train.subset(order[:n], "val")                                 # chunks stay consecutive
    splits["train"] = train.subset(rest, "train")
    return replace(cat, splits=splits)


def take_subsets(cat: Catalog, n_train: int, n_eval: int, seed: int = 0) -> Catalog:
    """Fixed random subsets (quick experiments): n_train training images, n_eval of each evaluation split."""
    splits = dict(cat.splits)
    for key, n, salt in (("train", n_train, 1), ("val", n_eval, 2), ("test", n_eval, 3)):
        s = splits.get(key)
        if n and s is not None and n < len(s):
            idx = torch.randperm(len(s), generator=torch.Generator().manual_seed(20_011 * salt + seed))[:n]
            splits[key] = s.subset(idx.sort().values)
    return replace(cat, splits=splits)
