"""The ImageNet layouts people actually have, besides folder-per-class trees.

- Kaggle (ILSVRC 2012 on kaggle.com): ILSVRC/Data/CLS-LOC/val/*.JPEG flat, labels in
  LOC_val_solution.csv ("ImageId,PredictionString", the first word of PredictionString is the WordNet
  id), class order in LOC_synset_mapping.txt ("n01440764 tench, Tinca tinca", one per line).
- The official devkit: val/ILSVRC2012_val_00000001.JPEG ... flat, ILSVRC2012_validation_ground_truth.txt
  (one ILSVRC2012_ID per line, for the files in name order) and data/meta.mat, which maps an
  ILSVRC2012_ID to its WordNet id (read with scipy when present).
Both give (file, WordNet id) pairs; labels follow the training classes (sorted WordNet-id folders).
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from ..errors import ReslabError
from .folder import IMAGE_EXTENSIONS

SOLUTION = "LOC_val_solution.csv"
SYNSETS = "LOC_synset_mapping.txt"
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"


def is_flat_image_folder(folder: Path) -> bool:
    """Images directly inside, no class sub-folders."""
    if not folder.is_dir():
        return False
    entries = list(folder.iterdir())
    return not any(e.is_dir() for e in entries) and any(e.suffix.lower() in IMAGE_EXTENSIONS for e in entries)


def find_beside(name: str, near: Path, levels: int = 5) -> Path | None:
    """`name` in `near`, its data/ folder, or up to `levels` folders above (where Kaggle and the devkit put it)."""
    for parent in [near, *near.parents][:levels]:
        for candidate in (parent / name, parent / "data" / name):
            if candidate.is_file():
                return candidate
    return None


def flat_val_labels(val_dir: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    """(files, labels) of a flat ImageNet validation folder, from whichever ground truth is beside it."""
    files = sorted(p for p in val_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    wnid_of = _kaggle(val_dir) or _devkit(val_dir, files)
    if wnid_of is None:
        raise ReslabError(f"{val_dir} holds images but no class folders, and no ground truth was found beside it: "
                          f"expected {SOLUTION} (Kaggle) or {GROUND_TRUTH} + meta.mat (devkit)")
    index = {c: i for i, c in enumerate(classes)}
    labels = []
    for f in files:
        wnid = wnid_of.get(f.stem)
        if wnid is None:
            raise ReslabError(f"{f.name} has no entry in the ground truth beside {val_dir}")
        if wnid not in index:
            raise ReslabError(f"{f.name} is labelled {wnid}, which is not one of the {len(classes)} training classes")
        labels.append(index[wnid])
    return files, labels


def _kaggle(val_dir: Path) -> dict[str, str] | None:
    path = find_beside(SOLUTION, val_dir)
    if path is None:
        return None
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                out[row["ImageId"]] = row["PredictionString"].split()[0]
            except (KeyError, IndexError):
                raise ReslabError(f"{path}: expected columns ImageId,PredictionString with a WordNet id first") from None
    return out


def _devkit(val_dir: Path, files: list[Path]) -> dict[str, str] | None:
    truth = find_beside(GROUND_TRUTH, val_dir)
    if truth is None:
        return None
    ids = [int(line) for line in truth.read_text().split()]
    if len(ids) != len(files):
        raise ReslabError(f"{truth} has {len(ids)} labels but {val_dir} holds {len(files)} images")
    wnids = _devkit_synsets(truth.parent)
    return {f.stem: wnids[i] for f, i in zip(files, ids)}


def _devkit_synsets(folder: Path) -> dict[int, str]:
    """ILSVRC2012_ID -> WordNet id, from the devkit's meta.mat (or a synsets.txt "ID WNID" text file)."""
    text = find_beside("ILSVRC2012_synsets.txt", folder)
    if text is not None:
        pairs = (line.split()[:2] for line in text.read_text().splitlines() if line.strip())
        return {int(i): w for i, w in pairs}
    meta = find_beside("meta.mat", folder)
    if meta is None:
        raise ReslabError(f"{GROUND_TRUTH} needs the devkit's meta.mat (ILSVRC2012_ID -> WordNet id) beside it")
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ReslabError("reading the devkit's meta.mat needs scipy: pip install scipy (or use Kaggle's "
                          f"{SOLUTION})") from None
    synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
    return {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}


def synset_order(path: Path) -> list[str]:
    """The class order of a LOC_synset_mapping.txt."""
    return [line.split()[0] for line in path.read_text().splitlines() if re.match(r"n\d{8}\b", line)]
