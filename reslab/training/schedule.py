"""The learning rate as a pure function of the step (nanoGPT style): nothing to save or restore."""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    name: str
    base_lr: float
    total_steps: int
    milestones: tuple[int, ...] = ()  # steps
    gamma: float = 0.1
    warmup_steps: int = 0
    warmup_lr: float = 0.01
    warmup_mode: str = "constant"
    min_lr: float = 0.0
    pct_start: float = 0.3        # onecycle (torch's OneCycleLR defaults)
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    anneal: str = "cos"
    flat_pct: float = 0.72        # flat_cos

    def __call__(self, step: int) -> float:
        if self.name == "onecycle":  # its own warm-up: warmup_steps is 0 (validated)
            return onecycle_lr(step, self.base_lr, self.total_steps, self.pct_start, self.div_factor,
                               self.final_div_factor, self.anneal)
        if step < self.warmup_steps:
            if self.warmup_mode == "constant":
                return self.warmup_lr  # the papers: 0.01 until training error < 80 %, here a fixed 400 steps
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.name == "multistep":
            return self.base_lr * self.gamma ** bisect.bisect_right(self.milestones, step)
        if self.name == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            t = min(step - self.warmup_steps, span) / span
            return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * t))
        if self.name == "flat_cos":
            return flat_cos_lr(step, self.base_lr, self.total_steps, self.flat_pct, self.min_lr)
        return self.base_lr


def _anneal(start: float, end: float, pct: float, how: str) -> float:
    """OneCycleLR's _annealing_cos / _annealing_linear."""
    if how == "linear":
        return (end - start) * pct + start
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def onecycle_lr(step: int, max_lr: float, total_steps: int, pct_start: float = 0.3, div_factor: float = 25.0,
                final_div_factor: float = 1e4, anneal: str = "cos") -> float:
    """torch.optim.lr_scheduler.OneCycleLR's lr before optimizer step `step` (two phases, no momentum cycling)."""
    initial = max_lr / div_factor
    phases = ((float(pct_start * total_steps) - 1, initial, max_lr),
              (total_steps - 1, max_lr, initial / final_div_factor))
    start = 0.0
    step = min(step, total_steps - 1)
    for i, (end, lr_from, lr_to) in enumerate(phases):
        if step <= end or i == len(phases) - 1:
            span = end - start  # <= 0 only for a phase shorter than a step (OneCycleLR divides by zero there)
            return _anneal(lr_from, lr_to, (step - start) / span if span > 0 else 1.0, anneal)
        start = end
    raise AssertionError("unreachable")


def flat_cos_lr(step: int, lr: float, total_steps: int, flat_pct: float = 0.72, min_lr: float = 0.0) -> float:
    """fastai's fit_flat_cos: lr while step / total < flat_pct, then a half cosine down to min_lr at the end
    (fastai's combined_cos(flat_pct, lr, lr, lr / div_final) with SchedCos, min_lr in place of lr / div_final)."""
    pos = min(step / max(total_steps, 1), 1.0)
    if pos < flat_pct or flat_pct >= 1:
        return lr
    t = (pos - flat_pct) / (1 - flat_pct)
    return lr + (1 + math.cos(math.pi * (1 - t))) * (min_lr - lr) / 2


def needs_paper_warmup(cfg) -> bool:
    """2015 paper: ResNet-110 (and 1202) warm up at lr 0.01; 2016 paper: the pre-activation nets too."""
    return cfg.preact or (cfg.stem == "cifar" and cfg.depth >= 110)


def make_schedule(sc, base_lr: float, total_steps: int, steps_per_epoch: int, model_cfg) -> Schedule:
    per = steps_per_epoch if sc.unit == "epoch" else 1
    warmup = sc.warmup_steps
    if warmup == "auto":
        warmup = 400 if needs_paper_warmup(model_cfg) and sc.name != "onecycle" else 0
    return Schedule(sc.name, base_lr, total_steps, tuple(int(round(m * per)) for m in sc.milestones), sc.gamma,
                    int(warmup), sc.warmup_lr, sc.warmup_mode, sc.min_lr, sc.pct_start, sc.div_factor,
                    sc.final_div_factor, sc.anneal, sc.flat_pct)
