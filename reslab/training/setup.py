"""Everything a run needs before its first step: data, pipeline, model, optimizer, run folder."""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.loader import DeviceLoader
from ..data.pipeline import Pipeline, make_pipeline
from ..data.sources import load_data
from ..data.streaming import StreamLoader, StreamSplit
from ..data.types import DataBundle
from ..data.whole import WholeImageLoader, WholeSplit
from ..errors import ReslabError
from ..models import build_model
from ..models.resnet import ResNet
from ..utils.io import atomic_write, finite_or_null
from . import distributed as dist
from .config import TrainConfig, to_yaml
from .device import Speed, resolve_speed
from .finetune import apply_freezing, pretrained_model
from .optim import EMA, make_optimizer
from .rundir import RunLock, claim_new_run_dir, run_name
from .schedule import Schedule, make_schedule

log = logging.getLogger(__name__)


@dataclass
class Run:
    cfg: TrainConfig
    speed: Speed
    data: DataBundle
    pipeline: Pipeline
    loader: DeviceLoader | StreamLoader | WholeImageLoader
    raw_model: ResNet           # unwrapped: what is saved and evaluated
    model: nn.Module            # what the step calls (DDP and/or compiled)
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    total_steps: int
    ema: EMA | None
    scaler: torch.amp.GradScaler | None
    dir: Path
    lock: RunLock | None = None  # held by the main rank while the run writes into `dir`

    @property
    def ckpt_dir(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated, and therefore saved: the EMA's when there is one."""
        return self.ema.module if self.ema is not None else self.raw_model

    def meta(self, step: int) -> dict[str, Any]:
        """What checkpoints carry for inference: model, classes, preprocessing, the run's config."""
        return {"model": self.cfg.model, "classes": self.data.classes, "preprocess": self.pipeline.preprocess.to_dict(),
                "dataset": self.data.name, "step": str(step), "train_config": to_yaml(self.cfg),
                "weights": "ema" if self.ema is not None else "raw"}

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def build_run(cfg: TrainConfig, run_dir: Path | None = None) -> Run:
    speed = resolve_speed(cfg.run, dist.local_rank())
    if cfg.run.sync_bn and speed.device.type != "cuda":
        raise ReslabError("run.sync_bn needs CUDA devices (PyTorch's SyncBatchNorm is GPU-only); on CPU each "
                          "process normalises with its own batch statistics")
    dist.init(speed.device)
    if speed.device.type == "cuda":  # fixed input sizes: let cuDNN pick its fastest kernels (as torchvision's
        torch.backends.cudnn.benchmark = True  # reference scripts); GPU runs are reproducible to a tolerance anyway
        torch.cuda.init()  # (the reset below raises before CUDA is initialised, as with --run.amp off)
        torch.cuda.reset_peak_memory_stats(speed.device)  # the summary's peak_mem_mib counts from here, not
        # from the process's start: a notebook or a benchmark training several runs in one process reads each
        # run's own peak (plus whatever other code still holds on the device when the run starts)
    data = _load_data_rank0_first(cfg)
    pipeline = make_pipeline(data, speed.channels_last)
    directory = run_dir or Path(cfg.run.out) / dist.broadcast_object(run_name(cfg.model, data.name, cfg.run.name))
    lock = None
    if dist.is_main():
        lock = RunLock(directory) if run_dir else claim_new_run_dir(directory)
    try:
        dist.barrier()  # no rank goes on before the main rank holds the folder
        return _build(cfg, speed, data, pipeline, directory, lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _build(cfg: TrainConfig, speed: Speed, data: DataBundle, pipeline: Pipeline, directory: Path,
           lock: RunLock | None) -> Run:
    if data.monitor is None:
        log.warning("no validation or test split found: training without evaluation")
    torch.manual_seed(cfg.run.seed)  # the initial weights are part of what a seed fixes
    raw, pipeline = _initial_model(cfg, data, pipeline)
    pipeline.configure(cfg.data)  # auto-augment, random erasing, progressive resizing
    loader = make_loader(cfg, data, pipeline, speed)  # after the model: fine-tuning may change the normalisation
    raw.pretrained_cfg = pipeline.preprocess.to_pretrained_cfg(source="reslab run", run=str(directory))
    raw = raw.to(speed.device)
    if speed.channels_last:
        raw = raw.to(memory_format=torch.channels_last)
    raw.set_grad_checkpointing(cfg.run.grad_checkpointing)
    if dist.is_distributed() and cfg.run.sync_bn:
        raw = nn.SyncBatchNorm.convert_sync_batchnorm(raw)
    model: nn.Module = raw
    if dist.is_distributed():
        model = nn.parallel.DistributedDataParallel(raw, device_ids=[speed.device.index] if speed.device.type == "cuda" else None)
    if speed.compile_mode:
        model = torch.compile(model, mode=speed.compile_mode)
    optimizer = make_optimizer(raw, cfg.optim, cfg.finetune.backbone_lr)
    spe = len(loader)
    total = cfg.schedule.steps or max(1, int(round(cfg.schedule.epochs * spe)))
    schedule = make_schedule(cfg.schedule, cfg.optim.lr, total, spe, raw.cfg)
    ema = EMA(raw, cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
    scaler = torch.amp.GradScaler(speed.device.type) if speed.amp_dtype == torch.float16 else None
    return Run(cfg, speed, data, pipeline, loader, raw, model, optimizer, schedule, total, ema, scaler, directory, lock)


def make_loader(cfg: TrainConfig, data: DataBundle, pipeline: Pipeline, speed: Speed):
    """The training batches: decoded once and held on the device, decoded per batch by workers (streamed
    squares), or cropped per sample on whole images (at the epoch's size, for progressive resizing)."""
    common = dict(seed=cfg.run.seed, rank=dist.rank(), world=dist.world_size())
    if isinstance(data.train, WholeSplit):
        return WholeImageLoader(data.train, cfg.batch_size, speed.device, pipeline.train_augment,
                                workers=cfg.data.workers, size_at=pipeline.size_at, **common)
    if isinstance(data.train, StreamSplit):
        return StreamLoader(data.train, cfg.batch_size, speed.device, pipeline.train_augment, workers=cfg.data.workers,
                            **common)
    return DeviceLoader(data.train, cfg.batch_size, speed.device, pipeline.train_augment, **common)


def write_config(run: Run) -> None:
    """RUN/config.yaml, written once the run is known to start (a resume only after its checkpoint loaded)."""
    if dist.is_main():
        atomic_write(run.dir / "config.yaml", lambda p: p.write_text(to_yaml(run.cfg)))


def _initial_model(cfg: TrainConfig, data: DataBundle, pipeline: Pipeline) -> tuple[ResNet, Pipeline]:
    """A fresh model, or (fine-tuning) the pretrained one, with the normalisation it was trained with."""
    if not cfg.finetune.weights:
        return build_model(cfg.model, num_classes=len(data.classes), **cfg.model_args), pipeline
    pre = pretrained_model(cfg, data.classes)
    if cfg.finetune.norm == "auto":
        pipeline = dataclasses.replace(pipeline, preprocess=dataclasses.replace(pipeline.preprocess, mean=pre.mean,
                                                                                std=pre.std))
    if dist.is_main():
        log.info("fine-tuning from %s: classifier %s; %s", pre.source, pre.head, apply_freezing(pre.model, cfg))
    else:
        apply_freezing(pre.model, cfg)
    return pre.model, pipeline


def _load_data_rank0_first(cfg: TrainConfig) -> DataBundle:
    d = cfg.data
    kw = dict(cache_size=d.cache_size or None, val_split=d.val_split, download=d.download, skip_bad=d.skip_bad,
              cache_dir=d.cache_dir or None, seed=d.seed, stream=d.stream, train_subset=d.train_subset,
              eval_subset=d.eval_subset, interpolation=d.interpolation, input=d.input, augment=d.augment, crop=d.crop,
              crop_pct=d.crop_pct, cache_shorter=d.cache_shorter, ten_crop=cfg.run.ten_crop, min_scale=d.min_scale)
    if dist.is_main():
        data = load_data(d.source, **kw)
        dist.barrier()
    else:
        dist.barrier()  # the main rank has filled the decode cache
        data = load_data(d.source, **kw)
    return data


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON (what any parser reads): a value that is not finite (the loss of a diverged evaluation, the
    best error of a run that never evaluated) is written as null, never as NaN or Infinity."""
    text = json.dumps(finite_or_null(obj), indent=1, default=lambda v: finite_or_null(float(v)), allow_nan=False)
    atomic_write(path, lambda p: p.write_text(text))
