"""Training runs through reslab's own API (build_config + train), cut at a deadline, read back from their files."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reslab.training import Interrupted, build_config, train

from .core import Deadline, deadline, median, request_stop


@dataclass
class RunOutcome:
    dir: Path
    status: str                      # done | stopped (the deadline came first; a checkpoint was saved) | cut |
    #                                  interrupted (a SIGTERM or Ctrl-C stopped it, with a checkpoint; the proof ends)
    wall_s: float                    # the train() call: data, model, compilation, steps, evaluations, saving
    records: list[dict] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def train_windows(self) -> list[dict]:
        return [r for r in self.records if r.get("kind") == "train"]

    def last_eval(self) -> dict | None:
        evals = [r for r in self.records if r.get("kind") == "eval"]
        return evals[-1] if evals else None

    def steps(self) -> int:
        """Iterations trained: the summary's, else the last checkpoint's (a stopped run saves one), else logged."""
        if self.summary.get("steps"):
            return int(self.summary["steps"])
        last = self.dir / "checkpoints" / "last"
        if last.exists() and last.resolve().name.startswith("step-"):
            return int(last.resolve().name.split("-")[1])
        windows = self.train_windows()
        return int(windows[-1]["step"]) if windows else 0

    def weights(self) -> Path | None:
        path = self.dir / "checkpoints" / "last" / "model.safetensors"
        return path if path.exists() else None


def run_training(recipe: str, overrides: dict[str, Any], until: float, resume: Path | None = None) -> RunOutcome:
    """reslab.training.train under a deadline: 'stopped' at the next step (with a checkpoint), or else 'cut'."""
    # at `until` the trainer gets SIGINT, as from Ctrl-C; it is cut if not in its loop yet or 30 s later (less
    # where an enclosing deadline comes sooner). A SIGTERM, or the user's Ctrl-C, reaches the trainer the same
    # way: the run is 'interrupted', its outcome is returned (so that its row is written) and the proof stops
    cfg = build_config(recipe, overrides)
    run_dir = resume or Path(cfg.run.out) / cfg.run.name
    t0, status = time.perf_counter(), "done"
    try:
        with deadline(until, graceful=True) as fired:
            try:
                train(cfg, resume=str(resume) if resume else None)
            except Interrupted:
                if fired:
                    status = "stopped"
                else:  # SIGTERM (the device tool's limit) or Ctrl-C: keep this run, start nothing new
                    request_stop("a SIGTERM or Ctrl-C stopped a training run")
                    status = "interrupted"
    except Deadline:
        status = "cut"
    wall = time.perf_counter() - t0
    records, summary = read_records(run_dir / "metrics.jsonl"), read_json(run_dir / "summary.json")
    return RunOutcome(run_dir, status, wall, records, summary)


def read_records(path: Path) -> list[dict]:
    """metrics.jsonl; a line cut short by a kill is skipped."""
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def steady_speed(windows: list[dict], batch: int, skip: int = 2) -> dict[str, float]:
    """Images/s once compiled and warm (median window after the first `skip`), and the compile + warm-up time."""
    # the first windows hold compilation, CUDA-graph recording and cuDNN's first calls: their time beyond
    # that of steady windows is the compile + warm-up time
    if not windows:
        return {}
    rest = windows[skip:] if len(windows) > skip + 1 else windows[-1:]
    img_s = median([w["img_s"] for w in rest])
    out = {"img_s": img_s, "windows": len(rest)}
    first = windows[0]
    if first.get("img_s"):
        steps0 = first["step"]  # the first window counts the steps from 0 to its step
        out["compile_s"] = max(0.0, steps0 * batch / first["img_s"] - steps0 * batch / img_s)
        if len(windows) > 1 and skip > 1 and windows[1].get("img_s"):
            steps1 = windows[1]["step"] - steps0
            out["compile_s"] += max(0.0, steps1 * batch / windows[1]["img_s"] - steps1 * batch / img_s)
    return out
