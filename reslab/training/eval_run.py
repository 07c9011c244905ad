"""Evaluate any checkpoint the model zoo loads on a data set: metrics, per-class accuracy, PNG.

For a checkpoint of a reslab run, the defaults reproduce the run's own evaluation: the data it was
trained on, the split it monitored (its val/ or test/ folder, or the images it held out), the same
evaluation transform, batch size and precision. Only the evaluated split is read, batch by batch, so
memory does not grow with the data set.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from ..data.preprocessing import InputConfig, normalize
from ..data.sources import evaluation_split
from ..errors import ReslabError
from ..hub import open_checkpoint
from ..hub.classes import same_classes
from ..models.factory import model_from_checkpoint
from ..utils.io import atomic_write
from . import plots
from .config import RunConfig
from .device import resolve_speed
from .evaluate import EvalResult, evaluate

SPLITS = ("auto", "val", "test", "train")


@dataclass
class EvalReport:
    result: EvalResult
    classes: list[str]
    weights: str
    out: Path | None


def evaluate_checkpoint(weights: str, data: str | None = None, *, model: str | None = None, split: str = "auto",
                        device: str = "auto", batch_size: int | None = None, ten_crop: bool | None = None,
                        mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                        crop: int = 0, out: str | None = None, amp: str | None = None,
                        val_split: int | None = None) -> EvalReport:
    """None (the defaults) take what the run did: its data, held-out split and subset, ten-crop, batch size,
    precision and unreadable-file skipping; a third-party file gets auto precision and no ten-crop."""
    if split not in SPLITS:
        raise ReslabError(f"split {split!r} is invalid; choose one of {', '.join(SPLITS)}")
    if batch_size is not None and batch_size < 1:
        raise ReslabError(f"batch size must be >= 1, got {batch_size}")
    opened = open_checkpoint(weights, model)
    ckpt, path = opened.checkpoint, opened.path
    if model and ckpt.model_name and model != ckpt.model_name:
        raise ReslabError(f"--model {model} contradicts the checkpoint, which is a {ckpt.model_name}: drop --model "
                          f"(the checkpoint records its architecture)")
    net = model_from_checkpoint(ckpt, model, str(path))
    trained = (ckpt.train_config or {}).get("data") or {}
    run_cfg = (ckpt.train_config or {}).get("run") or {}
    data = data or recorded_data(ckpt, opened.weight_set, str(weights))
    same_data = data == trained.get("source")
    vs = val_split if val_split is not None else (int(trained.get("val_split") or 0) if same_data else 0)
    ten_crop = bool(run_cfg.get("ten_crop", False)) if ten_crop is None else ten_crop
    cfg = _input(opened.input_config(net.cfg), mean, std, crop)
    decode = cfg.for_ten_crop() if ten_crop else cfg
    cat, target = evaluation_split(data, split, decode, val_split=vs,
                                   seed=int(trained.get("seed", 0)) if same_data else 0,
                                   eval_subset=int(trained.get("eval_subset") or 0) if same_data else 0)
    n_cls = net.cfg.num_classes
    if n_cls != len(cat.classes):
        raise ReslabError(f"the model has {n_cls} classes but --data {data} has {len(cat.classes)}")
    if ckpt.classes and not same_classes(ckpt.classes, cat.classes):
        raise ReslabError(f"class names differ between the checkpoint and the data: {ckpt.classes[:5]}... vs "
                          f"{cat.classes[:5]}...")
    speed = resolve_speed(RunConfig(device=device, amp=amp or str(run_cfg.get("amp", "auto"))))  # as the run did
    net = net.to(speed.device)
    batch = batch_size or int(run_cfg.get("eval_batch") or 256)
    res = evaluate(net, target, n_cls, lambda x: normalize(x, cfg.mean, cfg.std), speed.device, batch,
                   speed.amp_dtype, cfg.input_size if ten_crop else 0, cfg,
                   skip_bad=bool(trained.get("skip_bad")) and same_data)
    out_dir = Path(out) if out else run_eval_dir(path)
    if out_dir is not None:
        write_report(res, cat.classes, str(path), out_dir, f"{path.name} on {cat.name}")
    return EvalReport(res, cat.classes, str(path), out_dir)


def recorded_data(ckpt, weight_set, label: str) -> str:
    """The data a run checkpoint was trained on, when that is on this machine; never a guess (a shipped or
    registry set, a file without a training config, or a path that is not here: pass --data)."""
    source = ((ckpt.train_config or {}).get("data") or {}).get("source")
    if weight_set is not None:
        raise ReslabError(f"{weight_set.name} was trained on {weight_set.eval_data or 'data reslab does not have'}: "
                          f"pass --data")
    if source is None:
        raise ReslabError(f"{label} does not record the data it was trained on: pass --data")
    if source != "digits" and not source.startswith(("cifar10", "cifar100")):
        if any(not Path(p).exists() for p in source.split(",")):
            raise ReslabError(f"{label} was trained on --data {source}, which is not on this machine: pass --data")
    return source


def _input(cfg: InputConfig, mean, std, crop: int) -> InputConfig:
    """The checkpoint's evaluation transform; --crop rescales it (same crop_pct), --mean/--std replace."""
    if crop:
        cfg = cfg.with_crop(crop)
    if mean is not None:
        cfg = dataclasses.replace(cfg, mean=tuple(mean))
    if std is not None:
        cfg = dataclasses.replace(cfg, std=tuple(std))
    return cfg


def write_report(res: EvalResult, classes: list[str], weights: str, out_dir: Path, title: str) -> None:
    """confusion_SPLIT.png and metrics_SPLIT.json, named and titled by the split evaluated."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots.confusion_matrix(res.confusion, classes, out_dir / f"confusion_{res.split}.png",
                           f"{title} {res.split}: top-1 {100 * res.top1:.2f}%")
    report = json.dumps(report_dict(res, classes, weights), indent=1)
    atomic_write(out_dir / f"metrics_{res.split}.json", lambda f: f.write_text(report))


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


__all__ = ["EvalReport", "evaluate_checkpoint", "report_dict", "run_eval_dir", "recorded_data"]
