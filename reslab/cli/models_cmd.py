"""`reslab models`: every preset with its parameters and multiply-adds beside the papers' figures."""
from __future__ import annotations

import argparse
import json
import sys

from ..models.complexity import complexity, report_rows
from ..models.registry import list_models
from ..utils.table import format_table, human

COLUMNS = [("name", "model"), ("family", "family"), ("depth", "depth"), ("block", "block"),
           ("shortcut", "shortcut"), ("params_h", "params"), ("paper_params", "published"),
           ("macs_h", "MACs"), ("paper_macs", "published"), ("paper_source", "published in")]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list every model with params and multiply-adds",
                       description="Every preset with parameters and multiply-adds counted from the model "
                                   "(meta device, conv + linear layers, 1 image at 32x32 or 224x224), "
                                   "beside the figures the papers publish.")
    p.add_argument("names", nargs="*", help="models to show (default: all presets); any create_model name")
    p.add_argument("--filter", default="", help="only presets whose name contains this text")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.names:
        rows = [complexity(n) for n in args.names]
    elif args.filter:
        rows = report_rows(list_models(args.filter))
    else:
        rows = report_rows()
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    for r in rows:
        r["params_h"] = f"{r['params']:,}"
        r["macs_h"] = human(r["macs"])
    print(format_table(rows, COLUMNS, right=("depth", "params_h", "macs_h", "paper_params", "paper_macs")))
    print("\nMACs: multiply-adds of conv + linear layers for one image (32x32 CIFAR, 224x224 ImageNet). "
          "'@1x1' rows put the bottleneck stride on the first 1x1 (2015 paper); the default is on the 3x3 (torchvision).")
    return 0
