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

    def __call__(self, step: int) -> float:
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
        return self.base_lr


def needs_paper_warmup(cfg) -> bool:
    """2015 paper: ResNet-110 (and 1202) warm up at lr 0.01; 2016 paper: the pre-activation nets too."""
    return cfg.preact or (cfg.stem == "cifar" and cfg.depth >= 110)


def make_schedule(sc, base_lr: float, total_steps: int, steps_per_epoch: int, model_cfg) -> Schedule:
    per = steps_per_epoch if sc.unit == "epoch" else 1
    warmup = sc.warmup_steps
    if warmup == "auto":
        warmup = 400 if needs_paper_warmup(model_cfg) else 0
    return Schedule(sc.name, base_lr, total_steps, tuple(int(round(m * per)) for m in sc.milestones), sc.gamma,
                    int(warmup), sc.warmup_lr, sc.warmup_mode, sc.min_lr)
