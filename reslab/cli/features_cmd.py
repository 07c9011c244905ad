"""`reslab features`: pooled embeddings or stage feature maps of images, saved to .npy or .safetensors."""
from __future__ import annotations

import argparse
import sys

from .arguments import positive
from .inference_args import add_model_options, load_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="extract embeddings / stage feature maps of images",
                       description="Pooled features (the classifier's input) or stage maps (0 = stem, 1.. = stages) "
                                   "for every image, in sorted file order; the file list goes beside a .npy "
                                   "(NAME.files.json) or into the .safetensors metadata ('files').")
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    add_model_options(p)
    p.add_argument("--layers", default="pooled", help="comma-separated: pooled and/or stage indices, e.g. pooled,3")
    p.add_argument("--out", required=True, help="output .npy (one layer) or .safetensors file")
    p.add_argument("--batch-size", type=positive, default=64, help="images per forward pass")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inference import extract_features, list_images, save_features
    from ..inference.features import parse_layers
    from ..utils.device import resolve_device
    im = load_from_args(args)
    layers = parse_layers(args.layers, len(im.model.stage_names))
    paths = list_images(*args.images)
    feats = extract_features(im, paths, layers, args.batch_size, resolve_device(args.device), progress=sys.stderr.isatty())
    out = save_features(feats, paths, args.out)
    shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feats.items())
    print(f"{len(paths)} images -> {out} ({shapes})")
    return 0
