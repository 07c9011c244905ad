"""The training loop. The step never waits for the device: losses and accuracies accumulate on it
and are read (one host synchronisation) every `log_every` steps; a NaN/inf is caught there and
stops the run before anything is saved over the last good checkpoint.

Under DDP every rank must leave the loop at the same step, or the others wait in a collective until
the timeout: a Ctrl-C (or SIGTERM) on any rank is therefore agreed at the periodic metrics
all-reduce, and every rank stops there and saves one consistent checkpoint.
"""
from __future__ import annotations

import json
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ReslabError
from ..models.weights import load_into, read_checkpoint, read_metadata
from ..utils.progress import Progress
from ..utils.seeding import step_seed
from . import distributed as dist
from .checkpoint import find_checkpoint, load_state, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig, config_from_yaml
from .evaluate import EvalResult, evaluate
from .mixing import Mixer, dominant_label, make_mixer, mix_generator, soft_cross_entropy
from .report import RunResult, final_report
from .setup import Run, build_run, write_config
from .tensorboard import EventWriter

log = logging.getLogger(__name__)


class Interrupted(ReslabError):
    """Ctrl-C / SIGTERM: a resumable checkpoint was saved."""


class _StopRequest:
    """SIGINT and SIGTERM set a flag that the loop reads between steps, so the checkpoint it then
    writes is a consistent step boundary (an interrupt inside optimizer.step() would not be). A
    second signal aborts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)


class _Clock:
    """Accumulates training time; pause() / resume() around evaluation and checkpointing."""

    def __init__(self) -> None:
        self.total, self.window, self.steps = 0.0, 0.0, 0
        self.since = time.perf_counter()

    def pause(self) -> None:
        dt = time.perf_counter() - self.since
        self.total += dt
        self.window += dt

    def resume(self) -> None:
        self.since = time.perf_counter()

    def lap_rate(self, batch: int) -> float:
        """Images per second of training over the steps counted since the last lap."""
        self.pause()
        self.resume()
        rate = self.steps * batch / self.window if self.window > 0 else 0.0
        self.window, self.steps = 0.0, 0
        return rate


class _Metrics:
    """JSON lines + TensorBoard, written by the main rank only."""

    def __init__(self, run: Run) -> None:
        self.main = dist.is_main()
        self.records: list[dict] = []
        self.file = self.tb = None
        if self.main:
            self.file = open(run.dir / "metrics.jsonl", "a")
            try:
                self.tb = EventWriter(run.dir / "tensorboard") if run.cfg.run.tensorboard else None
            except BaseException:
                self.file.close()
                raise

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        if self.tb is not None:
            self.tb.add_scalars(record["step"], {f"{record['kind']}/{k}" if "/" not in k else k: v
                                                 for k, v in record.items() if isinstance(v, float)})

    def close(self) -> None:
        for handle in (self.file, self.tb):
            if handle is not None:
                handle.close()
        self.file = self.tb = None


class _NullMetrics:
    def write(self, record: dict) -> None:
        pass


@dataclass
class _LoopState:
    """What the loop carries from step to step (besides the Run itself)."""

    step: int
    best: float
    best_loss: float
    metrics: _Metrics
    progress: Progress
    acc: torch.Tensor                      # loss sum, correct, count of this rank since the last log
    bad: torch.Tensor                      # a non-finite loss was seen on this rank
    clock: _Clock = field(default_factory=_Clock)  # training time only: evaluation and saving excluded
    stop: _StopRequest = field(default_factory=_StopRequest)
    stopping: bool = False                 # every rank has agreed to stop at this step
    last_eval: EvalResult | None = None
    wall_before: float = 0.0               # wall time of earlier segments of a resumed run (up to its checkpoint)
    t0: float = field(default_factory=time.perf_counter)  # this segment's start
    mixer: Mixer | None = None             # mixup / CutMix (data.mixup, data.cutmix); None: off

    def wall(self) -> float:
        """Wall time of the whole run so far, across resumes."""
        return self.wall_before + time.perf_counter() - self.t0


def train(cfg: TrainConfig | None = None, resume: str | None = None) -> RunResult:
    """Run `cfg`; with `resume` (a run folder, its checkpoints folder or one checkpoint) continue that run
    from the checkpoint, in its own folder, with the config recorded there (resume_config(resume, overrides)
    makes it, flags on top; a `cfg` given with `resume` is used as it is). RUN/config.yaml is rewritten
    only once the checkpoint has loaded into the run."""
    run_dir, state, ckpt = None, None, None
    if resume:
        cfg = cfg or resume_config(resume)
        ckpt = find_checkpoint(resume)
        state = load_state(ckpt)
        run_dir = ckpt.parent.parent
        _warn_if_not_last(ckpt)
    if cfg is None:
        raise ReslabError("train() needs a config (reslab.training.build_config) or a run to resume")
    run = build_run(cfg, run_dir)
    try:
        start = 0
        if state is not None:
            start = _restore(run, ckpt, state)
            log.info("resumed %s at step %d of %d", run.dir, start, run.total_steps)
        write_config(run)
        return _loop(run, start, state or {})
    finally:
        run.close()
        dist.shutdown()


def resume_config(resume: str, overrides: dict | None = None) -> TrainConfig:
    """The config a resumed run continues with: the one recorded in the checkpoint it resumes from (not
    whatever RUN/config.yaml or a recipe says), with `overrides` (e.g. a longer schedule) on top."""
    ckpt = find_checkpoint(resume)
    text = read_metadata(ckpt / "model.safetensors").get("train_config")
    if not isinstance(text, str):
        raise ReslabError(f"{ckpt} records no training config (written by another tool?): it cannot be resumed")
    return config_from_yaml(text, overrides, f"the config recorded in {ckpt}")


def _warn_if_not_last(ckpt: Path) -> None:
    later = sorted(d.name for d in ckpt.parent.iterdir() if d.name.startswith("step-") and d.name > ckpt.name)
    if later:
        log.warning("resuming from %s although later checkpoints exist (up to %s): they are replaced as the run "
                    "reaches their steps", ckpt.name, later[-1])


def _restore(run: Run, ckpt: Path, state: dict) -> int:
    weights = read_checkpoint(ckpt / "model.safetensors")
    if state.get("raw_model") is not None:  # an EMA run: the weights file holds the EMA (evaluated) weights
        run.raw_model.load_state_dict(state["raw_model"])
        if run.ema is not None:
            load_into(run.ema.module, weights, name=run.cfg.model)
    else:
        load_into(run.raw_model, weights, name=run.cfg.model)
        if run.ema is not None and state.get("ema") is not None:  # checkpoints written before reslab 0.2
            run.ema.load_state_dict(state["ema"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scaler is not None and state.get("scaler") is not None:
        run.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return int(state["step"])


def _loop(run: Run, start: int, state: dict) -> RunResult:
    cfg, dev, batch = run.cfg, run.speed.device, run.cfg.batch_size
    progress = Progress(run.total_steps * batch, desc=f"train {cfg.model}", unit="img",
                        enabled=cfg.run.progress and dist.is_main())
    progress.update(start * batch)
    progress.reset_clock(start * batch)
    ls = _LoopState(start, float(state.get("best_err", float("inf"))), float(state.get("best_loss", float("inf"))),
                    _Metrics(run), progress,
                    torch.zeros(3, device=dev, dtype=torch.float64), torch.zeros((), device=dev, dtype=torch.bool),
                    wall_before=float(state.get("wall_s", 0.0)))
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.optim.label_smoothing)
    ls.mixer = make_mixer(cfg.data, len(run.data.classes), cfg.optim.label_smoothing)
    if ls.mixer is not None:  # soft targets, label smoothing already folded in (timm's mixup_target)
        criterion = soft_cross_entropy
    run.model.train()
    try:
        try:
            with ls.stop:
                _epochs(run, ls, criterion)
        except KeyboardInterrupt:  # a second signal: aborted inside a step, not at a step boundary
            raise Interrupted(f"aborted; the last checkpoint is kept; continue with: reslab train --resume {run.dir}") from None
        if ls.stopping and ls.step < run.total_steps:
            _check_finite(run, ls.bad, ls.step)
            _save(run, ls, False)
            raise Interrupted(f"interrupted at step {ls.step}: checkpoint saved; continue with: "
                              f"reslab train --resume {run.dir}")
    finally:
        ls.progress.close()
        ls.metrics.close()
    return _finish(run, ls, start)


def _epochs(run: Run, ls: _LoopState, criterion) -> None:
    """Train from ls.step to the end (or an agreed stop); evaluate and save on schedule."""
    cfg, spe, batch, total = run.cfg, len(run.loader), run.cfg.batch_size, run.total_steps
    eval_every = cfg.run.eval_every or spe
    ckpt_every = cfg.run.ckpt_every or eval_every
    while ls.step < total and not ls.stopping:
        run.pipeline.set_epoch(ls.step // spe)  # progressive resizing: the resolution of this epoch
        for x, y in run.loader.epoch(ls.step // spe, start=ls.step % spe):
            _train_step(run, criterion, x, y, ls)
            ls.step += 1
            ls.clock.steps += 1
            step = ls.step
            synced = step % cfg.run.log_every == 0 or step == total
            if synced:
                rec = _log_train(run, ls)
                ls.metrics.write(rec)
                ls.progress.update(step * batch, f"loss {rec['loss']:.3f} err {100 * rec['err']:.1f}% "
                                                 f"lr {rec['lr']:.3g} {rec['img_s']:,.0f} img/s")
            elif not dist.is_distributed():
                ls.stopping = ls.stop.requested  # alone, a stop needs no agreement: take it at once
            if ls.stopping and step < total:
                return
            do_eval = step % eval_every == 0 or step == total
            if do_eval or step % ckpt_every == 0:
                ls.clock.pause()
                _check_finite(run, ls.bad, step)  # never save over a good checkpoint with NaN weights
                is_best = False
                if do_eval:
                    ls.last_eval = _evaluate(run, step, ls.metrics)
                    is_best = ls.last_eval is not None and _better(ls.last_eval, ls.best, ls.best_loss)
                    if is_best:
                        ls.best, ls.best_loss = ls.last_eval.top1_err, ls.last_eval.loss
                _save(run, ls, is_best)
                ls.clock.resume()
            if step >= total:
                return


def _train_step(run: Run, criterion, x, y, ls: _LoopState) -> None:
    lr = run.schedule(ls.step)
    for g in run.optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    # Per-step seed: stochastic depth / dropout draw the same numbers whether or not the run was resumed.
    torch.manual_seed(step_seed(run.cfg.run.seed, ls.step, dist.rank()))
    target = y
    if ls.mixer is not None:  # a generator of its own: a pure function of (seed, step, rank), like the rest
        x, target = ls.mixer(x, y, mix_generator(run.cfg.run.seed, ls.step, dist.rank()))
        y = dominant_label(target)  # the train error counts against the label with the larger weight
    amp = run.speed.amp_dtype
    with torch.autocast(run.speed.device.type, dtype=amp, enabled=amp is not None):
        logits = run.model(x)
        loss = criterion(logits.float(), target)
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
    else:
        loss.backward()
    if run.cfg.optim.grad_clip > 0:
        nn.utils.clip_grad_norm_(run.raw_model.parameters(), run.cfg.optim.grad_clip)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    if run.ema is not None:
        run.ema.update(run.raw_model)
    d = loss.detach()
    ls.bad |= ~torch.isfinite(d)
    ls.acc[0] += d * len(y)
    ls.acc[1] += (logits.detach().argmax(1) == y).sum()
    ls.acc[2] += len(y)


def _check_finite(run: Run, bad: torch.Tensor, step: int) -> None:
    flag = bad.clone().to(torch.int32)
    dist.all_reduce_sum(flag)
    if flag.item():
        _raise_not_finite(run, step)


def _raise_not_finite(run: Run, step: int) -> None:
    last = run.ckpt_dir / "last"
    where = f"the last good checkpoint {last.resolve()} is untouched" if last.exists() else "no checkpoint was written"
    raise ReslabError(f"loss became NaN or infinite by step {step}; training stopped and {where} "
                      f"(try a lower optim.lr or schedule.warmup_steps)")


def _log_train(run: Run, ls: _LoopState) -> dict:
    """One all-reduce carries the metrics, the NaN flag and the stop requests of every rank."""
    img_s = ls.clock.lap_rate(run.cfg.batch_size)
    flags = torch.tensor([float(ls.bad), float(ls.stop.requested)], dtype=torch.float64, device=ls.acc.device)
    sums = dist.all_reduce_sum(torch.cat([ls.acc, flags]))
    ls.acc.zero_()
    if sums[3].item():
        _raise_not_finite(run, ls.step)
    ls.stopping = bool(sums[4].item())
    n = max(sums[2].item(), 1)
    return {"kind": "train", "step": ls.step, "epoch": round(ls.step / len(run.loader), 3),
            "loss": sums[0].item() / n, "err": 1.0 - sums[1].item() / n, "lr": run.schedule(ls.step - 1),
            "img_s": img_s * dist.world_size()}


def _evaluate(run: Run, step: int, metrics, split=None) -> EvalResult | None:
    split = split or run.data.monitor
    if split is None:
        return None
    cfg = run.pipeline.preprocess
    ten = cfg.input_size if run.cfg.run.ten_crop else 0
    res = evaluate(run.eval_model, split, len(run.data.classes), run.pipeline.eval_input(bool(ten)),
                   run.speed.device, run.cfg.run.eval_batch, run.speed.amp_dtype, ten, cfg)
    metrics.write({"kind": "eval", "step": step, **res.summary()})
    return res


def _better(res: EvalResult, best_err: float, best_loss: float) -> bool:
    """A lower top-1 error, or the same with a lower loss (ties are common on small evaluation sets)."""
    return res.top1_err < best_err or (res.top1_err == best_err and res.loss < best_loss)


def _save(run: Run, ls: _LoopState, is_best: bool) -> None:
    """model.safetensors holds the weights that were evaluated (the EMA's, when there is one), so
    eval/predict/export/finetune load the model the run reported; the raw weights, needed to
    resume, go into state.pt."""
    raw = {k: v.detach().cpu() for k, v in run.raw_model.state_dict().items()} if run.ema is not None else None
    step = ls.step
    state = {"step": step, "optimizer": run.optimizer.state_dict(), "rng": rng_state(), "best_err": ls.best,
             "best_loss": ls.best_loss, "wall_s": ls.wall(),
             "raw_model": raw, "scaler": run.scaler.state_dict() if run.scaler is not None else None,
             "data": {"seed": run.cfg.run.seed, "epoch": step // len(run.loader), "batch": step % len(run.loader)}}
    if dist.is_main():
        save_checkpoint(run.ckpt_dir, step, run.eval_model, state, run.meta(step), best=is_best,
                        keep=run.cfg.run.keep_ckpts)
    dist.barrier()


def _finish(run: Run, ls: _LoopState, start: int) -> RunResult:
    total = ls.wall()  # the loop's end: a final test evaluation below is not counted, as before
    last_eval = ls.last_eval
    final = dict(last_eval.summary()) if last_eval else {}
    if run.data.val is not None and run.cfg.data.eval_test and run.data.test is not None:
        test = _evaluate(run, ls.step, _NullMetrics(), run.data.test)
        final.update(test.summary())
        last_eval = test if test is not None else last_eval
    train_time = ls.clock.total
    img_s = (ls.step - start) * run.cfg.batch_size / train_time if train_time > 0 else 0.0
    result = RunResult(run.dir, ls.step, final, ls.best, total - ls.wall_before, img_s, total)
    if dist.is_main():
        final_report(run, result, ls.metrics.records, last_eval)
    return result
