"""`reslab weights [MODEL]`: every pretrained set reslab knows by name, with its accuracy,
preprocessing, classes, licence, and whether it is already on this machine."""
from __future__ import annotations

import argparse
import json

from ..utils.table import format_table

COLUMNS = [("name", "name"), ("aliases", "also"), ("source", "source"), ("top1", "top-1"), ("top5", "top-5"),
           ("eval", "evaluated at"), ("classes", "classes"), ("license", "licence"), ("cached", "cached")]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="list the pretrained weights reslab loads by name",
                       description="Pretrained sets usable as --weights NAME (and create_model(..., weights=NAME)): "
                                   "the full name ARCH.TAG, an alias with --model ARCH (tv2, akamaster, "
                                   "torchvision:IMAGENET1K_V2), or hf-hub:timm/ARCH.TAG. Files are downloaded on first "
                                   "use into torch.hub's cache ($TORCH_HOME/hub/checkpoints) or the Hugging Face cache, "
                                   "and their sha256 is checked every time they are read.")
    p.add_argument("model", nargs="?", default=None, help="only the sets of this architecture, e.g. resnet50")
    p.add_argument("--json", action="store_true", help="print every field of every set as a JSON list")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ReslabError
    from ..hub import list_weights
    from ..hub.download import cached_path
    from ..models.registry import resolve
    if args.model:
        resolve(args.model)  # an unknown architecture is a one-line error with close matches
    sets = list_weights(args.model)
    if not sets:
        raise ReslabError(f"no pretrained weights are known for {args.model}; `reslab weights` lists every set")
    if args.json:
        print(json.dumps([{**w.to_dict(), "cached": str(cached_path(w) or "")} for w in sets], indent=1))
        return 0
    rows = []
    for w in sets:
        pre = w.preprocess
        rows.append({"name": w.name + (" *" if w.default else ""), "aliases": ", ".join(w.aliases), "source": w.source,
                     "top1": f"{w.top1:.2f}" if w.top1 is not None else "", "top5": f"{w.top5:.2f}" if w.top5 else "",
                     "eval": f"{pre.resize}->{pre.input_size} {pre.interpolation}",
                     "classes": f"{w.num_classes} {w.classes}",
                     "license": w.license + (" (non-commercial)" if w.non_commercial else ""),
                     "cached": "yes" if cached_path(w) else ""})
    print(format_table(rows, COLUMNS, right=("top1", "top5")))
    print("\n* what pretrained=True loads. top-1/top-5 (%) as published by the source, on "
          "ImageNet-1k val or CIFAR test (original pixels), with the preprocessing shown (resize shorter side -> "
          "centre crop); source reslab: measured by reslab on the data its model card names (`--json`: eval_data).")
    return 0
