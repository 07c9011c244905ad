"""`reslab eval`: top-1/top-5 error, per-class accuracy and a confusion-matrix PNG for any checkpoint."""
from __future__ import annotations

import argparse
import json

from ..utils.table import format_table
from .arguments import positive, positive_or_zero


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on a data set",
                       description="Evaluate reslab run checkpoints or any checkpoint the model zoo loads "
                                   "(torchvision/timm state dicts, the community CIFAR .th files; give --model for those).")
    p.add_argument("--weights", required=True, help="weights file, checkpoint folder or run folder (its best checkpoint)")
    p.add_argument("--data", default=None,
                   help="same forms as `reslab train --data` (default: the data the checkpoint was trained on)")
    p.add_argument("--model", default=None, help="architecture, for checkpoints that do not record it")
    p.add_argument("--split", default="auto", choices=("auto", "val", "test", "train"),
                   help="which split to evaluate: auto = what training monitors (val, else test); val is a val/ folder "
                        "or the images --val-split holds out of train; test a test/ folder")
    p.add_argument("--val-split", type=positive_or_zero, default=None, metavar="N",
                   help="hold out N training images as the validation split (default: what the run did)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=positive, default=None,
                   help="images per evaluation batch (default: the run's run.eval_batch, else 256)")
    p.add_argument("--amp", default=None, choices=("auto", "off", "bf16", "fp16"),
                   help="autocast precision (default: the run's; auto = what `reslab train` uses on this device)")
    p.add_argument("--ten-crop", action="store_true", default=None,
                   help="average 10 crops (corners + centre, mirrored; default: what the run did)")
    p.add_argument("--crop", type=positive, default=0, help="network input size (default: the checkpoint's, else the image's)")
    p.add_argument("--mean", type=float, nargs=3, default=None, help="normalisation (default: checkpoint's, else ImageNet's)")
    p.add_argument("--std", type=float, nargs=3, default=None, help="normalisation std (default: checkpoint's, else ImageNet's)")
    p.add_argument("--out", default=None,
                   help="folder for the confusion-matrix PNG and metrics JSON (default: RUN/eval/step-N for run checkpoints)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.eval_run import evaluate_checkpoint, report_dict
    rep = evaluate_checkpoint(args.weights, args.data, model=args.model, split=args.split, device=args.device,
                              batch_size=args.batch_size, ten_crop=args.ten_crop, mean=args.mean, std=args.std,
                              crop=args.crop, out=args.out, amp=args.amp, val_split=args.val_split)
    r = rep.result
    if args.json:
        print(json.dumps(report_dict(r, rep.classes, rep.weights), indent=1))
        return 0
    print(f"{rep.weights} on {r.split} ({r.n:,} images): top-1 error {100 * r.top1_err:.2f}% "
          f"(accuracy {100 * r.top1:.2f}%), top-5 error {100 * r.top5_err:.2f}%, loss {r.loss:.4f}")
    rows = [{"cls": c, "acc": f"{100 * a:.2f}%"} for c, a in zip(rep.classes, r.per_class())]
    print(format_table(rows, [("cls", "class"), ("acc", "accuracy")], right=("acc",)))
    if rep.out:
        print(f"confusion matrix: {rep.out / f'confusion_{r.split}.png'}")
    return 0
