"""`reslab analyze gradients|responses`: gradient flow and layer responses, as CSV, PNG and a table."""
from __future__ import annotations

import argparse

from .arguments import positive


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="gradient flow / layer responses of models and checkpoints")
    s = p.add_subparsers(dest="what", metavar="WHAT")
    s.required = True
    g = s.add_parser("gradients", help="per-block gradient norms and gradient shattering, plain vs residual",
                     description="||dL/dx_l|| at every block's input for one batch of real images (BN in training "
                                 "mode), at initialisation (each model and its plain/residual twin) and at every "
                                 "checkpoint of --weights; plus the cosine similarity of input gradients at nearby inputs.")
    g.add_argument("models", nargs="+", help="model names, e.g. resnet56 (its twin plain56 is added)")
    g.add_argument("--weights", default=None, help="a checkpoint, or a run folder (every kept checkpoint)")
    g.add_argument("--data", default=None, help="as `reslab train --data` (default: digits)")
    g.add_argument("--batch", type=positive, default=128, help="real training images in the measured batch")
    g.add_argument("--no-twins", action="store_true", help="do not add the plain/residual twin of each model")
    g.add_argument("--out", default="runs/analysis-gradients", help="folder for the CSV, PNG and summary")
    g.set_defaults(func=run_gradients)
    r = s.add_parser("responses", help="std of each 3x3 layer's response (2015 paper, Fig. 7)")
    r.add_argument("checkpoints", nargs="+", help="checkpoint files or run folders (their last checkpoint)")
    r.add_argument("--model", default=None, help="architecture, for checkpoints that do not record it")
    r.add_argument("--data", default=None, help="as `reslab train --data` (default: digits)")
    r.add_argument("--images", type=positive, default=1000, help="test images the responses are measured on")
    r.add_argument("--out", default="runs/analysis-responses", help="folder for the CSV, PNG and summary")
    r.set_defaults(func=run_responses)


def run_gradients(args: argparse.Namespace) -> int:
    from ..analysis.commands import analyze_gradients, format_gradient_rows
    rows = analyze_gradients(args.models, args.weights, args.data, args.batch, not args.no_twins, args.out)
    print(format_gradient_rows(rows))
    print(f"\nplot: {args.out}/gradients.png, per-block values: {args.out}/gradients.csv")
    return 0


def run_responses(args: argparse.Namespace) -> int:
    from ..analysis.commands import analyze_responses
    from ..utils.table import format_table
    rows = analyze_responses(args.checkpoints, args.model, args.data, args.images, args.out)
    shown = [{**r, "mean_std": f"{r['mean_std']:.3f}", "max_std": f"{r['max_std']:.3f}"} for r in rows]
    print(format_table(shown, [("model", "model"), ("layers", "3x3 layers"), ("mean_std", "mean std"),
                               ("max_std", "max std")], right=("layers", "mean_std", "max_std")))
    print(f"\nplot: {args.out}/responses.png, values: {args.out}/responses.csv")
    return 0
