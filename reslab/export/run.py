"""`reslab export` as a function: load, fold, export, verify on real images, optionally quantise."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.catalog import Catalog
from ..data.preprocessing import eval_image
from ..data.sources import prepared_catalog, transform_arrays
from ..data.types import FileSplit, Split
from ..errors import ReslabError
from ..inference.images import to_channels
from ..inference.spec import InferenceModel
from ..utils.io import atomic_write
from .fold import fold_batchnorm
from .formats import FORMATS, export_model, load_exported
from .verify import VerifyReport, compare_outputs

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    path: Path
    folded_bn: int
    verify: VerifyReport | None = None
    int8_path: Path | None = None
    accuracy: dict[str, float] = field(default_factory=dict)  # eager fp32 / int8 top-1 (%) on the eval split
    eval_images: int = 0


def export_checkpoint(im: InferenceModel, fmt: str, out: Path, *, data: str | None = None, fold: bool = True,
                      verify: bool = True, verify_images: int = 256, tolerance: float = 1e-3, int8: bool = False,
                      calib_images: int = 512, calib_method: str = "percentile", eval_images: int = 0,
                      int8_max_drop: float = 1.0) -> ExportResult:
    if int8 and fmt != "onnx":
        raise ReslabError("--int8 quantises with ONNX Runtime: use --format onnx")
    if fmt not in FORMATS:
        raise ReslabError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    model = im.model.float().eval()
    bundle = _real_data(im, data) if (verify or int8) else None
    module, folded = fold_batchnorm(model) if fold else (model, 0)
    crop = im.preprocess.input_size
    example = torch.zeros(2, im.in_chans, crop, crop)
    path = export_model(module, example, fmt, out)
    result = ExportResult(path, folded)
    if verify:
        split = _evaluation(bundle)
        x = _inputs(im, split, verify_images)
        result.verify = compare_outputs(model, load_exported(path, fmt), x)
        limit = tolerance * max(1.0, result.verify.max_logit)
        if result.verify.max_abs_diff > limit:
            path.unlink(missing_ok=True)
            raise ReslabError(f"exported {fmt} model differs from eager PyTorch by {result.verify.max_abs_diff:.2e} "
                              f"(> tolerance {limit:.2e}): export rejected and {path.name} removed")
    if int8:
        from .quantize import quantize_onnx
        if len(bundle.classes) != im.model.cfg.num_classes:
            raise ReslabError(f"--data {data} has {len(bundle.classes)} classes, the model {im.model.cfg.num_classes}: "
                              f"the int8 accuracy cost needs the data the model classifies")
        calib_split, eval_split = _calibration_and_eval(bundle, calib_images)
        calib = _inputs(im, calib_split, calib_images)
        result.int8_path = quantize_onnx(path, path.with_name(path.stem + ".int8.onnx"), calib, method=calib_method)
        eval_split = _first(eval_split, eval_images)
        result.eval_images = len(eval_split)
        result.accuracy = {"fp32 eager": top1(model, im, eval_split),
                           "int8 onnx": top1(load_exported(result.int8_path, "onnx"), im, eval_split)}
        drop = result.accuracy["fp32 eager"] - result.accuracy["int8 onnx"]
        if drop > int8_max_drop:
            result.int8_path.unlink(missing_ok=True)
            raise ReslabError(f"int8 model loses {drop:.2f} points of top-1 ({result.accuracy['fp32 eager']:.2f}% -> "
                              f"{result.accuracy['int8 onnx']:.2f}% on {len(eval_split)} images), more than "
                              f"--int8-max-drop {int8_max_drop}: int8 file removed (the float export is kept)")
    _write_card(im, fmt, result)
    return result


def _real_data(im: InferenceModel, data: str | None) -> Catalog:
    if data is None:
        raise ReslabError("verifying the export needs real images: pass --data (a folder-per-class tree, an archive, "
                          "cifar10:DIR or digits), or --no-verify")
    return prepared_catalog(data)


def _evaluation(cat: Catalog) -> Split | FileSplit:
    name = cat.evaluation_split() or "train"
    return cat.splits[name]


def _first(split: Split | FileSplit, n: int) -> Split | FileSplit:
    return split if not n or n >= len(split) else split.subset(torch.arange(n))


def _inputs(im: InferenceModel, split: Split | FileSplit, n: int) -> torch.Tensor:
    """The first n images of `split` through the model's evaluation transform (as `reslab predict`)."""
    part = _first(split, n)
    if isinstance(part, FileSplit):
        images = torch.stack([eval_image(r, im.preprocess) for r in part.refs])
    else:
        images = transform_arrays(part, im.preprocess).images
    return im.prepare(to_channels(images, im.in_chans))


def _labels(split: Split | FileSplit) -> torch.Tensor:
    return split.labels if isinstance(split, Split) else torch.tensor(split.labels)


def _calibration_and_eval(cat: Catalog, n: int) -> tuple[Split | FileSplit, Split | FileSplit]:
    """Calibrate on training images when there are any, so the evaluation images stay unseen."""
    name = cat.evaluation_split()
    train = cat.splits.get("train")
    if train is not None and len(train) and name is not None:
        g = torch.Generator().manual_seed(0)
        pick = torch.randperm(len(train), generator=g)[:n]
        return train.subset(pick), cat.splits[name]
    split = cat.splits[name or "train"]
    if len(split) <= n:
        raise ReslabError(f"only {len(split)} images: not enough to calibrate on {n} and evaluate on the rest")
    return split.subset(torch.arange(n)), split.subset(torch.arange(n, len(split)))


@torch.no_grad()
def top1(fn, im: InferenceModel, split: Split | FileSplit, batch_size: int = 64) -> float:
    correct, labels = 0, _labels(split)
    for start in range(0, len(split), batch_size):
        x = _inputs(im, split.subset(torch.arange(start, min(start + batch_size, len(split)))), 0)
        correct += int((fn(x).float().argmax(1) == labels[start:start + batch_size]).sum())
    return 100.0 * correct / len(split)


def _write_card(im: InferenceModel, fmt: str, r: ExportResult) -> None:
    """What a deployment needs beside the file: input name/shape, preprocessing, classes, checks."""
    card = {"format": fmt, "file": r.path.name, "source_weights": str(im.weights), "model": im.name,
            "input": {"name": "images", "shape": ["batch", im.in_chans, im.preprocess.input_size, im.preprocess.input_size],
                      "dtype": "float32"},
            "preprocess": im.preprocess.to_dict(), "classes": im.classes, "folded_batchnorm": r.folded_bn,
            "verification": None if r.verify is None else r.verify.__dict__,
            "int8": None if r.int8_path is None else {"file": r.int8_path.name, "top1": r.accuracy,
                                                      "eval_images": r.eval_images}}
    atomic_write(r.path.with_suffix(r.path.suffix + ".json"), lambda p: p.write_text(json.dumps(card, indent=1)))
