"""`reslab export`: ONNX / TorchScript / torch.export files with BN folded, verified against eager
PyTorch on real images; optional int8 (ONNX Runtime) with its accuracy cost measured."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..export.formats import FORMATS
from .arguments import non_negative_float, positive, positive_float, positive_or_zero
from .inference_args import add_model_options, load_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint for deployment (onnx, torchscript, exported-program)",
                       description="BatchNorm is folded into the convolutions, the batch axis is dynamic, and the "
                                   "exported file is run on real images from --data and compared with eager PyTorch: "
                                   "above the tolerance the export is rejected. A JSON card beside the file records "
                                   "input shape, preprocessing, classes and the checks.")
    add_model_options(p)
    p.add_argument("--format", default="onnx", choices=tuple(FORMATS), help="file format (default onnx)")
    p.add_argument("--out", default=None, help="output file (default: exports/<model><ext>)")
    p.add_argument("--data", default=None,
                   help="real images for verification/calibration, as `reslab train --data` (e.g. a folder tree, "
                        "cifar10:DIR, digits)")
    p.add_argument("--no-fold", action="store_true", help="keep BatchNorm layers")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison with eager PyTorch")
    p.add_argument("--verify-images", type=positive, default=256, help="real images the export is compared on")
    p.add_argument("--tolerance", type=positive_float, default=1e-3,
                   help="max |exported - eager| allowed, relative to the largest logit (at least 1)")
    p.add_argument("--int8", action="store_true", help="also write an int8 model (ONNX Runtime, static, per-channel)")
    p.add_argument("--calib-images", type=positive, default=512, help="training images used to calibrate int8 ranges")
    p.add_argument("--calib-method", default="percentile", choices=("minmax", "percentile", "entropy"),
                   help="how int8 ranges are chosen from the calibration activations")
    p.add_argument("--eval-images", type=positive_or_zero, default=0, help="images to measure the int8 accuracy cost on (0: all)")
    p.add_argument("--int8-max-drop", type=non_negative_float, default=1.0, help="reject the int8 model above this top-1 loss (points)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export.run import export_checkpoint
    im = load_from_args(args)
    out = Path(args.out) if args.out else Path("exports") / f"{im.name}{FORMATS[args.format]}"
    r = export_checkpoint(im, args.format, out, data=args.data, fold=not args.no_fold, verify=not args.no_verify,
                          verify_images=args.verify_images, tolerance=args.tolerance, int8=args.int8,
                          calib_images=args.calib_images, calib_method=args.calib_method,
                          eval_images=args.eval_images, int8_max_drop=args.int8_max_drop)
    print(f"exported {im.name} ({args.format}, {r.folded_bn} BatchNorm layers folded, dynamic batch) -> {r.path}")
    if r.verify is not None:
        print(f"verified against eager PyTorch on {r.verify.line()}")
    if r.int8_path is not None:
        a = r.accuracy
        print(f"int8 -> {r.int8_path}: top-1 {a['int8 onnx']:.2f}% vs {a['fp32 eager']:.2f}% fp32 eager on "
              f"{r.eval_images:,} images (int8 - fp32: {a['int8 onnx'] - a['fp32 eager']:+.2f} points)")
    print(f"model card: {r.path}.json")
    return 0
