"""Evaluate any checkpoint the model zoo loads on a data set: metrics, per-class accuracy, PNG.

For a checkpoint of a reslab run, the defaults reproduce the run's own evaluation: the data it was
trained on, its validation split (same size and data seed), its evaluation batch size and precision.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..data.pipeline import Pipeline, Preprocess
from ..data.sources import load_data
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ReslabError
from ..models.factory import model_from_checkpoint
from ..utils.io import atomic_write
from . import plots
from .config import RunConfig
from .device import resolve_speed
from .evaluate import EvalResult, evaluate

SPLITS = ("test", "val", "train")


@dataclass
class EvalReport:
    result: EvalResult
    classes: list[str]
    weights: str
    out: Path | None


def evaluate_checkpoint(weights: str, data: str | None = None, *, model: str | None = None, split: str = "test",
                        device: str = "auto", batch_size: int | None = None, ten_crop: bool = False,
                        mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                        crop: int = 0, out: str | None = None, cache_size: int = 0, amp: str = "auto",
                        val_split: int | None = None) -> EvalReport:
    if split not in SPLITS:
        raise ReslabError(f"split {split!r} is invalid; choose one of {', '.join(SPLITS)}")
    if batch_size is not None and batch_size < 1:
        raise ReslabError(f"batch size must be >= 1, got {batch_size}")
    from ..hub import open_checkpoint
    opened = open_checkpoint(weights, model)
    ckpt, path = opened.checkpoint, opened.path
    trained = (ckpt.train_config or {}).get("data") or {}
    if data is None:
        data = trained.get("source")
        if data is None:
            raise ReslabError(f"{path} does not record the data it was trained on: pass --data")
    same_data = data == trained.get("source")
    vs = val_split if val_split is not None else (int(trained.get("val_split") or 0) if same_data else 0)
    pre = ckpt.preprocess
    bundle = load_data(data, cache_size=cache_size or pre.get("image_size") or None, val_split=vs,
                       seed=int(trained.get("seed", 0)) if same_data else 0,
                       interpolation=str(pre.get("interpolation", "bilinear")))
    target = {"test": bundle.test, "val": bundle.val, "train": bundle.train}[split]
    if target is None:
        hint = ("pass --val-split N to hold out N training images, as the run did with data.val_split" if split == "val"
                else "use --split val or train")
        raise ReslabError(f"--data {data} has no {split} split: {hint}")
    net = model_from_checkpoint(ckpt, model, str(path))
    n_cls = net.cfg.num_classes
    if n_cls != len(bundle.classes):
        raise ReslabError(f"the model has {n_cls} classes but --data {data} has {len(bundle.classes)}")
    if ckpt.classes and not same_classes(ckpt.classes, bundle.classes):
        raise ReslabError(f"class names differ between the checkpoint and the data: {ckpt.classes[:5]}... vs "
                          f"{bundle.classes[:5]}...")
    size = int(target.image_shape[-1])
    net_crop = _input_size(pre, size, crop, data)
    p = Preprocess(tuple(mean or pre.get("mean") or IMAGENET_MEAN), tuple(std or pre.get("std") or IMAGENET_STD),
                   size, net_crop, str(pre.get("interpolation", "bilinear")))
    speed = resolve_speed(RunConfig(device=device, amp=amp))  # the same precision `reslab train` evaluates with
    dev = speed.device
    net = net.to(dev)
    prepare = Pipeline(p, "none").eval_input(ten_crop)  # exactly what training's evaluation does
    batch = batch_size or int(((ckpt.train_config or {}).get("run") or {}).get("eval_batch") or 256)
    res = evaluate(net, target, n_cls, prepare, dev, batch, speed.amp_dtype, p.crop if ten_crop else 0)
    out_dir = Path(out) if out else run_eval_dir(path)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        plots.confusion_matrix(res.confusion, bundle.classes, out_dir / f"confusion_{split}.png",
                               f"{path.name} on {bundle.name} {split}: top-1 {100 * res.top1:.2f}%")
        report = json.dumps(report_dict(res, bundle.classes, str(path)), indent=1)
        atomic_write(out_dir / f"metrics_{split}.json", lambda f: f.write_text(report))
    return EvalReport(res, bundle.classes, str(path), out_dir)


def same_classes(model_classes: list[str], data_classes: list[str]) -> bool:
    """The same classes in the same order. An ImageNet-1k tree names its folders by WordNet id
    (n01440764, ...), which sort into the label order the ImageNet-1k class names are in."""
    if model_classes == data_classes:
        return True
    from ..hub import class_names
    return (len(data_classes) == 1000 and model_classes == class_names("imagenet1k")
            and all(re.fullmatch(r"n\d{8}", c) for c in data_classes) and data_classes == sorted(data_classes))


def _input_size(pre: dict, size: int, crop: int, data: str) -> int:
    """The network input: --crop when given; else the checkpoint's, refused when the data cannot give it."""
    if crop:
        if crop > size:
            raise ReslabError(f"--crop {crop} is larger than the {size}x{size} images of --data {data}")
        return crop
    want, trained_size = int(pre.get("crop") or size), int(pre.get("image_size") or size)
    if want > size or trained_size != size:
        raise ReslabError(f"the checkpoint was trained on {trained_size}-pixel images ({want}x{want} input) but "
                          f"--data {data} gives {size}x{size} images: pass --crop {min(want, size)} to evaluate "
                          f"at that size anyway")
    return want


def run_eval_dir(weights_file: Path) -> Path | None:
    """RUN/eval/step-N for a checkpoint of a run folder (never inside the immutable checkpoint); None otherwise."""
    step_dir = weights_file.resolve().parent
    if step_dir.parent.name != "checkpoints":
        return None
    return step_dir.parent.parent / "eval" / step_dir.name


def report_dict(res: EvalResult, classes: list[str], weights: str) -> dict:
    return {"weights": weights, "split": res.split, "images": res.n, "top1_err": res.top1_err, "top5_err": res.top5_err,
            "top1_acc": res.top1, "loss": res.loss,
            "per_class_acc": dict(zip(classes, res.per_class())), "confusion": res.confusion.tolist()}


__all__ = ["EvalReport", "evaluate_checkpoint", "report_dict", "run_eval_dir"]
