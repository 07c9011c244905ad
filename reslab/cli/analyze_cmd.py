"""`reslab analyze gradients|responses`: gradient flow and layer responses, as CSV, PNG and a table."""
from __future__ import annotations

import argparse

from .arguments import positive, positive_float, positive_or_zero


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="gradient flow, layer responses, loss landscapes, lesion studies")
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
    ls = s.add_parser("landscape", help="loss landscape around trained weights (Li et al. 2018)",
                      description="Training loss and error at theta + a*d1 + b*d2 for random filter-normalised "
                                  "directions (zero on BN parameters and biases; the same directions for every "
                                  "checkpoint), on a fixed subset of training images. --quick: an 11x11 grid on "
                                  "1,000 images (a few minutes per CIFAR ResNet on 2 CPU cores).")
    ls.add_argument("checkpoints", nargs="+", help="checkpoint files, run folders (their last checkpoint) or "
                                                   "pretrained names")
    _study_options(ls)
    ls.add_argument("--steps", type=positive, default=None, help="grid points per direction (default 21; --quick 11)")
    ls.add_argument("--span", type=positive_float, default=1.0, help="the grid covers [-span, span] per direction")
    ls.add_argument("--dims", type=int, choices=(1, 2), default=2, help="1-D curve or 2-D surface")
    ls.add_argument("--images", type=positive, default=None, help="training images (default 2500; --quick 1000)")
    ls.add_argument("--bn", choices=("frozen", "recompute"), default="frozen",
                    help="BatchNorm statistics at each point: the trained ones (frozen, as the paper), or "
                         "re-estimated on the images (recompute)")
    ls.add_argument("--quick", action="store_true", help="11x11 grid on 1,000 images")
    ls.add_argument("--every-checkpoint", action="store_true", help="for run folders: every kept checkpoint")
    ls.add_argument("--out", default="runs/analysis-landscape", help="folder for the CSV, PNGs and summary")
    ls.set_defaults(func=run_landscape)
    le = s.add_parser("lesion", help="test error after deleting residual blocks (Veit et al. 2016)",
                      description="Deletes each single block, then k random blocks (k = 1..n, several draws), and "
                                  "measures the test error: a deleted block outputs its shortcut (the identity in a "
                                  "stage, the option-A/B shortcut of a downsampling block; the identity, option-A "
                                  "padded, for plain blocks). Also plots the binomial distribution of path lengths "
                                  "and, for residual nets, the input gradient carried by paths of each length.")
    le.add_argument("checkpoints", nargs="+", help="checkpoint files, run folders (their last checkpoint) or "
                                                   "pretrained names")
    _study_options(le)
    le.add_argument("--images", type=positive, default=2000, help="test images the error is measured on")
    le.add_argument("--draws", type=positive, default=5, help="random draws per number of deleted blocks")
    le.add_argument("--path-draws", type=positive_or_zero, default=3,
                    help="random routings per path length for the gradient per path length (Veit Fig. 6b-c; "
                         "residual nets only; 0: skip)")
    le.add_argument("--path-images", type=positive, default=128,
                    help="test images in the batch whose input gradient is measured per path")
    le.add_argument("--out", default="runs/analysis-lesion", help="folder for the CSV, PNGs and summary")
    le.set_defaults(func=run_lesion)


def _study_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="architecture, for checkpoints that do not record it")
    p.add_argument("--data", default=None, help="as `reslab train --data` (default: what the checkpoint was trained on)")
    p.add_argument("--seed", type=positive_or_zero, default=0, help="seed of the image subset and the directions")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"), help="autocast precision")


def _print_rows(rows: list[dict], out: str) -> None:
    from ..utils.table import format_table
    print(format_table(rows, [(k, k) for k in rows[0]]))
    print(f"\nresults: {out}/summary.md (CSV and PNGs beside it)")


def run_landscape(args: argparse.Namespace) -> int:
    from ..analysis.studies import analyze_landscape
    steps = args.steps or (11 if args.quick else 21)
    images = args.images or (1000 if args.quick else 2500)
    rows = analyze_landscape(args.checkpoints, args.model, args.data, steps=steps, span=args.span, dims=args.dims,
                             images=images, seed=args.seed, bn=args.bn, device=args.device, amp=args.amp,
                             every_checkpoint=args.every_checkpoint, out=args.out)
    _print_rows(rows, args.out)
    return 0


def run_lesion(args: argparse.Namespace) -> int:
    from ..analysis.studies import analyze_lesion
    rows = analyze_lesion(args.checkpoints, args.model, args.data, images=args.images, draws=args.draws,
                          seed=args.seed, device=args.device, amp=args.amp, path_draws=args.path_draws,
                          path_images=args.path_images, out=args.out)
    _print_rows(rows, args.out)
    return 0


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
