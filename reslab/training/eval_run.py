"""Evaluate any checkpoint the model zoo loads on a data set: metrics, per-class accuracy, PNG."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


from ..data.pipeline import Pipeline, Preprocess
from ..data.sources import load_data
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ReslabError
from ..models import read_checkpoint
from ..models.factory import model_from_checkpoint
from ..models.weights import resolve_weights
from . import plots
from .config import RunConfig
from .device import resolve_speed
from .evaluate import EvalResult, evaluate


@dataclass
class EvalReport:
    result: EvalResult
    classes: list[str]
    weights: str
    out: Path | None


def evaluate_checkpoint(weights: str, data: str | None, *, model: str | None = None, split: str = "test",
                        device: str = "auto", batch_size: int = 256, ten_crop: bool = False,
                        mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                        crop: int = 0, out: str | None = None, cache_size: int = 0, amp: str = "auto") -> EvalReport:
    path = resolve_weights(weights)
    ckpt = read_checkpoint(path)
    meta = ckpt.metadata
    classes = json.loads(meta["classes"]) if "classes" in meta else None
    pre = json.loads(meta["preprocess"]) if "preprocess" in meta else {}
    bundle = load_data(data or "digits", cache_size=cache_size or pre.get("image_size") or None)
    target = {"test": bundle.test, "val": bundle.val or bundle.test, "train": bundle.train}.get(split)
    if target is None:
        raise ReslabError(f"--data {data} has no {split} split")
    net = model_from_checkpoint(ckpt, model, str(path))
    n_cls = net.cfg.num_classes
    if n_cls != len(bundle.classes):
        raise ReslabError(f"the model has {n_cls} classes but --data {data} has {len(bundle.classes)}")
    if classes and classes != bundle.classes:
        raise ReslabError(f"class names differ between the checkpoint and the data: {classes[:5]}... vs {bundle.classes[:5]}...")
    size = int(target.image_shape[-1])
    p = Preprocess(tuple(mean or pre.get("mean") or IMAGENET_MEAN), tuple(std or pre.get("std") or IMAGENET_STD),
                   size, crop or min(pre.get("crop", size), size))
    speed = resolve_speed(RunConfig(device=device, amp=amp))  # the same precision `reslab train` evaluates with
    dev = speed.device
    net = net.to(dev)
    prepare = Pipeline(p, "none").eval_input(ten_crop)  # exactly what training's evaluation does
    res = evaluate(net, target, n_cls, prepare, dev, batch_size, speed.amp_dtype, p.crop if ten_crop else 0)
    out_dir = Path(out) if out else (path.parent / "eval" if ckpt.config is not None else None)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        plots.confusion_matrix(res.confusion, bundle.classes, out_dir / f"confusion_{split}.png",
                               f"{path.name} on {bundle.name} {split}: top-1 {100 * res.top1:.2f}%")
        (out_dir / f"metrics_{split}.json").write_text(json.dumps(report_dict(res, bundle.classes, str(path)), indent=1))
    return EvalReport(res, bundle.classes, str(path), out_dir)


def report_dict(res: EvalResult, classes: list[str], weights: str) -> dict:
    return {"weights": weights, "split": res.split, "images": res.n, "top1_err": res.top1_err, "top5_err": res.top5_err,
            "top1_acc": res.top1, "loss": res.loss,
            "per_class_acc": dict(zip(classes, res.per_class())), "confusion": res.confusion.tolist()}
