"""`reslab predict`: top-k classes with names and probabilities for images or folders of images."""
from __future__ import annotations

import argparse
import json
import sys

from ..utils.table import format_table
from .arguments import positive
from .inference_args import add_model_options, load_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images with a checkpoint (top-k names and probabilities)",
                       description="Preprocessing (input size, normalisation) and class names come from the checkpoint.")
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    add_model_options(p)
    p.add_argument("--top-k", type=positive, default=5, help="how many classes to show per image (at most all)")
    p.add_argument("--batch-size", type=positive, default=64, help="images per forward pass")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true",
                   help='print JSON instead of a table: {"weights", "model", "predictions": [one object per image]}')
    p.add_argument("--cam", action="store_true",
                   help="also write, per image, a PNG with the class activation map of each top-k class")
    p.add_argument("--cam-dir", default="cams", help="folder for the --cam PNGs (default: ./cams)")
    p.add_argument("--gradcam-stage", type=positive, default=None, metavar="S",
                   help="with --cam: Grad-CAM of stage S (1 = layer1, ...) instead of the exact CAM of the last stage")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inference import list_images, predict
    from ..utils.device import resolve_device
    im = load_from_args(args)
    paths = list_images(*args.images)
    results = predict(im, paths, args.top_k, args.batch_size, resolve_device(args.device),
                      progress=len(paths) > args.batch_size and sys.stderr.isatty())
    if args.cam:
        from ..inference.cam import write_cams
        cams = write_cams(im, paths, args.cam_dir, args.top_k, args.gradcam_stage, args.batch_size,
                          resolve_device(args.device))
        for r, f in zip(results, cams):
            r["cam"] = str(f)
    if args.json:
        print(json.dumps({"weights": str(im.weights), "model": im.name, "predictions": results}, indent=1))
        return 0
    rows = []
    for r in results:
        for rank, t in enumerate(r["top"], start=1):
            rows.append({"file": r["file"] if rank == 1 else "", "rank": rank, "class": t["class"],
                         "prob": f"{100 * t['prob']:.2f}%"})
    print(format_table(rows, [("file", "image"), ("rank", "#"), ("class", "class"), ("prob", "probability")],
                       right=("rank", "prob")))
    if args.cam:
        print(f"\nclass activation maps: {len(paths)} PNG(s) in {args.cam_dir}/")
    return 0
