"""Weights reslab trained itself and ships inside the package (fp16 safetensors, a few MB in all),
each with a model card (JSON) beside it: they load offline on a fresh install."""
from __future__ import annotations

import json
from importlib import resources

from .weight_set import WeightSet


def shipped_weight_sets() -> list[WeightSet]:
    folder = resources.files("reslab.hub").joinpath("shipped")
    if not folder.is_dir():
        return []
    sets = []
    for card_file in sorted(p for p in folder.iterdir() if p.name.endswith(".json")):
        card = json.loads(card_file.read_text())
        sets.append(WeightSet(arch=card["arch"], tag=card.get("tag", "reslab"), source="reslab",
                              url=f"package:shipped/{card['file']}", sha256=card["sha256"], top1=card.get("top1"),
                              top5=card.get("top5"), eval_data=card.get("eval_data", ""),
                              preprocess=card["preprocess"], classes=card.get("classes", "cifar10"),
                              license=card.get("license", "mit"), aliases=tuple(card.get("aliases", ["reslab"])),
                              default=bool(card.get("default", False)), read_from=card_file.name,
                              notes=card.get("notes", "")))
    return sets
