"""Run an experiment: every arm x seed with the same recipe, then the report."""
from __future__ import annotations

import collections
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ReslabError, choices_hint
from ..training.config import build_config, to_yaml
from .definitions import BUDGETS, DEPTH_QUICK_STEPS, EXPERIMENTS, Arm, Experiment

log = logging.getLogger(__name__)


@dataclass
class ArmResult:
    arm: Arm
    seed: int
    dir: Path
    summary: dict[str, Any]
    records: list[dict]


def arm_overrides(exp: Experiment, arm: Arm, budget: str, data: str, seed: int, run_dir: Path,
                  extra: dict[str, Any]) -> dict[str, Any]:
    b = BUDGETS[budget]
    steps = DEPTH_QUICK_STEPS if (exp.name == "depth" and budget == "quick") else b.steps
    args = dict(arm.model_args)
    if budget == "quick" and arm.label in exp.quick_depth:
        args["depth"] = exp.quick_depth[arm.label]
    over = {"model": arm.model, "data.source": data, "schedule.steps": steps,
            "schedule.milestones": [steps // 2, steps * 3 // 4], "schedule.unit": "step",
            "data.train_subset": b.train_subset, "data.eval_subset": b.eval_subset,
            "run.eval_every": min(b.eval_every, steps), "run.ckpt_every": min(b.ckpt_every, steps),
            "run.keep_ckpts": 1000, "run.seed": seed, "run.out": str(run_dir.parent), "run.name": run_dir.name,
            **exp.run}
    if budget == "quick":
        # Every arm warms up linearly over the first 10 %. Without it ResNet-56 (and the independent
        # akamaster re-implementation, identically) blows up at lr 0.1 in the first ~20 iterations and
        # sits at chance until the lr drops: harmless over 64k iterations, half of a 1,000-step run.
        over["schedule.warmup_steps"] = steps // 10
        over["schedule.warmup_mode"] = "linear"
    over.update({f"model_args.{k}": v for k, v in args.items()})
    over.update(extra)  # the user's --set wins over the experiment's and the budget's choices
    return over


def run_experiment(name: str, budget: str = "quick", data: str | None = None, seeds: list[int] | None = None,
                   out: str = "runs", extra: dict[str, Any] | None = None, only: list[str] | None = None) -> Path:
    if name not in EXPERIMENTS:
        raise ReslabError(f"unknown experiment {name!r}; {choices_hint(name, EXPERIMENTS)}")
    if budget not in BUDGETS:
        raise ReslabError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    exp = EXPERIMENTS[name]
    arms = [a for a in exp.arms if not only or a.label in only or a.model in only]
    if not arms:
        raise ReslabError(f"--only {only} matches no arm of {name}; arms: {', '.join(a.label for a in exp.arms)}")
    seeds = seeds or [0]
    data = data or "cifar10"
    root = Path(out) / f"{name}-{budget}-{time.strftime('%Y%m%d-%H%M%S')}"
    # Every arm's config is built (and so validated) before anything is written.
    plan = [(seed, arm, root / _slug(arm.label) / f"seed-{seed}") for seed in seeds for arm in arms]
    configs = [build_config("cifar-paper", arm_overrides(exp, arm, budget, data, seed, run_dir, extra or {}))
               for seed, arm, run_dir in plan]
    root.mkdir(parents=True, exist_ok=False)
    command = " ".join(["reslab", *sys.argv[1:]]) if sys.argv[1:2] == ["experiment"] else ""
    results: list[ArmResult] = []
    t0 = time.time()
    for i, ((seed, arm, run_dir), cfg) in enumerate(zip(plan, configs), start=1):
        print(f"[{name} {i}/{len(plan)}] {arm.label} ({arm.model}, seed {seed}) -> {run_dir}", file=sys.stderr)
        if exp.isolate:
            _train_in_subprocess(cfg, run_dir)
        else:
            from ..training import train
            train(cfg)
        summary = json.loads((run_dir / "summary.json").read_text())
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        results.append(ArmResult(arm, seed, run_dir, summary, records))
    from .report import write_report
    write_report(exp, budget, data, seeds, results, root, time.time() - t0, command)
    return root


def _train_in_subprocess(cfg, run_dir: Path) -> None:
    """`reslab train` in a process of its own (its peak memory is its own); its progress is passed
    through as it comes, and its last line becomes the error if it fails."""
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe = run_dir / "experiment-config.yaml"
    recipe.write_text(to_yaml(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "reslab", "train", "--recipe", str(recipe)], stderr=subprocess.PIPE,
                            text=True)
    tail: collections.deque[str] = collections.deque(maxlen=5)
    for line in proc.stderr:
        sys.stderr.write(line)
        if line.strip():
            tail.append(line.strip())
    if proc.wait() != 0:
        raise ReslabError(f"training {cfg.model} failed: {tail[-1] if tail else f'exit code {proc.returncode}'}")


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")
