"""The training loop. The step never waits for the device: losses and accuracies accumulate on it
and are read (one host synchronisation) every `log_every` steps; a NaN/inf is caught there and
stops the run before anything is saved over the last good checkpoint."""
from __future__ import annotations

import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ReslabError
from ..utils.progress import Progress
from . import distributed as dist
from .checkpoint import find_checkpoint, load_state, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .evaluate import EvalResult, evaluate
from .setup import Run, build_run
from .tensorboard import EventWriter

log = logging.getLogger(__name__)


class Interrupted(ReslabError):
    """Ctrl-C: a resumable checkpoint was saved."""


@dataclass
class RunResult:
    dir: Path
    steps: int
    final: dict[str, float]
    best_err: float
    wall_s: float
    img_s: float


class _StopRequest:
    """SIGINT sets a flag that the loop reads between steps, so the checkpoint it then writes is a
    consistent step boundary (an interrupt inside optimizer.step() would not be). A second Ctrl-C
    aborts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old = None

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


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
        if self.main:
            self.file = open(run.dir / "metrics.jsonl", "a")
            self.tb = EventWriter(run.dir / "tensorboard") if run.cfg.run.tensorboard else None

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.main:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
            if self.tb:
                self.tb.add_scalars(record["step"], {f"{record['kind']}/{k}" if "/" not in k else k: v
                                                     for k, v in record.items() if isinstance(v, float)})

    def close(self) -> None:
        if self.main:
            self.file.close()
            if self.tb:
                self.tb.close()


def train(cfg: TrainConfig, resume: str | None = None) -> RunResult:
    run_dir, state = None, None
    if resume:
        ckpt = find_checkpoint(resume)
        state = load_state(ckpt)
        run_dir = ckpt.parent.parent
    run = build_run(cfg, run_dir)
    start = 0
    if state is not None:
        start = _restore(run, ckpt, state)
        log.info("resumed %s at step %d of %d", run.dir, start, run.total_steps)
    try:
        return _loop(run, start, state or {})
    finally:
        dist.shutdown()


def _restore(run: Run, ckpt: Path, state: dict) -> int:
    from ..models.weights import load_into, read_checkpoint
    load_into(run.raw_model, read_checkpoint(ckpt / "model.safetensors"), name=run.cfg.model)
    run.optimizer.load_state_dict(state["optimizer"])
    if run.ema is not None and state.get("ema") is not None:
        run.ema.load_state_dict(state["ema"])
    if run.scaler is not None and state.get("scaler") is not None:
        run.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return int(state["step"])


def _loop(run: Run, start: int, state: dict) -> RunResult:
    cfg, dev = run.cfg, run.speed.device
    total, batch = run.total_steps, cfg.batch_size
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.optim.label_smoothing)
    metrics = _Metrics(run)
    best = float(state.get("best_err", float("inf")))
    acc = torch.zeros(3, device=dev, dtype=torch.float64)  # loss sum, correct, count (this rank)
    bad = torch.zeros((), device=dev, dtype=torch.bool)
    progress = Progress(total * batch, desc=f"train {cfg.model}", unit="img", enabled=cfg.run.progress and dist.is_main())
    progress.update(start * batch)
    progress.reset_clock(start * batch)
    clock = _Clock()  # training time only: evaluation and saving are excluded from throughput
    last_eval: EvalResult | None = None
    t0, step = time.perf_counter(), start
    run.model.train()
    stop = _StopRequest()
    try:
        with stop:
            step, last_eval, best = _epochs(run, step, total, criterion, acc, bad, clock, metrics, progress, stop, best)
        if stop.requested:
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        progress.close()
        _interrupted(run, step, bad, best, consistent=stop.requested)
    finally:
        progress.close()
    metrics.close()
    wall = time.perf_counter() - t0
    return _finish(run, step, start, best, wall, clock.total, metrics.records, last_eval)


def _epochs(run: Run, step: int, total: int, criterion, acc, bad, clock: "_Clock", metrics: "_Metrics",
            progress: Progress, stop: _StopRequest, best: float) -> tuple[int, EvalResult | None, float]:
    """Train from `step` to `total` (or until a stop is requested); evaluate and save on schedule."""
    cfg, spe, batch = run.cfg, len(run.loader), run.cfg.batch_size
    eval_every = cfg.run.eval_every or spe
    ckpt_every = cfg.run.ckpt_every or eval_every
    last_eval: EvalResult | None = None
    while step < total and not stop.requested:
        for x, y in run.loader.epoch(step // spe, start=step % spe):
            _train_step(run, criterion, x, y, step, acc, bad)
            step += 1
            clock.steps += 1
            if step % cfg.run.log_every == 0 or step == total:
                rec = _log_train(run, acc, bad, step, clock.lap_rate(batch))
                metrics.write(rec)
                progress.update(step * batch, f"loss {rec['loss']:.3f} err {100 * rec['err']:.1f}% "
                                              f"lr {rec['lr']:.3g} {rec['img_s']:,.0f} img/s")
            do_eval = step % eval_every == 0 or step == total
            if do_eval or step % ckpt_every == 0:
                clock.pause()
                _check_finite(run, bad, step)  # never save over a good checkpoint with NaN weights
                is_best = False
                if do_eval:
                    last_eval = _evaluate(run, step, metrics)
                    is_best = last_eval is not None and last_eval.top1_err < best
                    best = last_eval.top1_err if is_best else best
                _save(run, step, best, is_best)
                clock.resume()
            if step >= total or stop.requested:
                break
    return step, last_eval, best


def _train_step(run: Run, criterion, x, y, step: int, acc: torch.Tensor, bad: torch.Tensor) -> None:
    lr = run.schedule(step)
    for g in run.optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    # Per-step seed: stochastic depth / dropout draw the same numbers whether or not the run was resumed.
    torch.manual_seed((run.cfg.run.seed * 1_000_003 + step) * 64 + dist.rank())
    amp = run.speed.amp_dtype
    with torch.autocast(run.speed.device.type, dtype=amp, enabled=amp is not None):
        logits = run.model(x)
        loss = criterion(logits.float(), y)
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
    bad |= ~torch.isfinite(d)
    acc[0] += d * len(y)
    acc[1] += (logits.detach().argmax(1) == y).sum()
    acc[2] += len(y)


def _check_finite(run: Run, bad: torch.Tensor, step: int) -> None:
    flag = bad.clone().to(torch.int32)
    dist.all_reduce_sum(flag)
    if flag.item():
        last = run.ckpt_dir / "last"
        where = f"the last good checkpoint {last.resolve()} is untouched" if last.exists() else "no checkpoint was written"
        raise ReslabError(f"loss became NaN or infinite by step {step}; training stopped and {where} "
                          f"(try a lower optim.lr or schedule.warmup_steps)")


def _log_train(run: Run, acc: torch.Tensor, bad: torch.Tensor, step: int, img_s: float) -> dict:
    _check_finite(run, bad, step)
    sums = dist.all_reduce_sum(acc.clone())
    acc.zero_()
    n = max(sums[2].item(), 1)
    return {"kind": "train", "step": step, "epoch": round(step / len(run.loader), 3), "loss": sums[0].item() / n,
            "err": 1.0 - sums[1].item() / n, "lr": run.schedule(step - 1), "img_s": img_s * dist.world_size()}


def _eval_model(run: Run) -> nn.Module:
    return run.ema.module if run.ema is not None else run.raw_model


def _evaluate(run: Run, step: int, metrics: _Metrics, split=None) -> EvalResult | None:
    split = split or run.data.monitor
    if split is None:
        return None
    ten = run.pipeline.preprocess.crop if run.cfg.run.ten_crop else 0
    res = evaluate(_eval_model(run), split, len(run.data.classes), run.pipeline.eval_input(bool(ten)),
                   run.speed.device, run.cfg.run.eval_batch, run.speed.amp_dtype, ten)
    metrics.write({"kind": "eval", "step": step, **res.summary()})
    return res


def _save(run: Run, step: int, best: float, is_best: bool) -> None:
    state = {"step": step, "optimizer": run.optimizer.state_dict(), "rng": rng_state(), "best_err": best,
             "ema": run.ema.state_dict() if run.ema is not None else None,
             "scaler": run.scaler.state_dict() if run.scaler is not None else None,
             "data": {"seed": run.cfg.run.seed, "epoch": step // len(run.loader), "batch": step % len(run.loader)}}
    if dist.is_main():
        save_checkpoint(run.ckpt_dir, step, run.raw_model, state, run.meta(step), best=is_best, keep=run.cfg.run.keep_ckpts)
    dist.barrier()


def _interrupted(run: Run, step: int, bad: torch.Tensor, best: float, consistent: bool) -> None:
    if not consistent:  # aborted inside a step: not a step boundary, so keep the last checkpoint
        raise Interrupted(f"aborted; the last checkpoint is kept; continue with: reslab train --resume {run.dir}")
    _check_finite(run, bad, step)
    _save(run, step, best, False)
    raise Interrupted(f"interrupted at step {step}: checkpoint saved; continue with: reslab train --resume {run.dir}")


def _finish(run: Run, step: int, start: int, best: float, wall: float, train_time: float, records: list[dict],
            last_eval: EvalResult | None) -> RunResult:
    from .report import final_report
    final = dict(last_eval.summary()) if last_eval else {}
    if run.data.val is not None and run.cfg.data.eval_test and run.data.test is not None:
        test = _evaluate(run, step, _NullMetrics(), run.data.test)
        final.update(test.summary())
        last_eval = test if test is not None else last_eval
    img_s = (step - start) * run.cfg.batch_size / train_time if train_time > 0 else 0.0
    result = RunResult(run.dir, step, final, best, wall, img_s)
    if dist.is_main():
        final_report(run, result, records, last_eval)
    return result


class _NullMetrics:
    def write(self, record: dict) -> None:
        pass
