"""End of a run: summary.json, the training-curve PNG, the confusion matrix and a summary table."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..utils.io import finite_or_null
from ..utils.progress import fmt_time
from ..utils.table import format_table
from . import plots
from .evaluate import EvalResult
from .setup import Run, write_json


@dataclass
class RunResult:
    dir: Path
    steps: int
    final: dict[str, float]
    best_err: float
    wall_s: float
    img_s: float
    wall_s_total: float = 0.0  # across resumes: the time of every segment up to its last checkpoint, plus this one


def final_report(run: Run, result: RunResult, records: list[dict], last_eval: EvalResult | None) -> None:
    summary = {"model": run.cfg.model, "data": run.data.name, "steps": result.steps, "wall_s": round(result.wall_s, 2),
               "wall_s_total": round(result.wall_s_total, 2),
               "train_img_s": round(result.img_s, 1), "best_top1_err": result.best_err, **result.final,
               "device": str(run.speed.device), "amp": str(run.speed.amp_dtype), "channels_last": run.speed.channels_last,
               "compile": run.speed.compile_mode, "world_size": run.loader.world, "peak_mem_mib": peak_memory_mib(run)}
    summary = finite_or_null(summary)  # a run that never evaluated has no best error: null, and '-' in the table
    write_json(run.dir / "summary.json", summary)
    plots.training_curves(whole_run_records(run.dir / "metrics.jsonl", records), run.dir / "curves.png",
                          f"{run.cfg.model} on {run.data.name}")
    if last_eval is not None:
        plots.confusion_matrix(last_eval.confusion, run.data.classes, run.dir / f"confusion_{last_eval.split}.png",
                               f"{run.cfg.model}: {last_eval.split} top-1 {100 * last_eval.top1:.2f}%")
    rows = [{"what": k, "value": _fmt(k, v)} for k, v in summary.items()]
    print("\n" + format_table(rows, [("what", "run summary"), ("value", str(run.dir))]), file=sys.stderr)


def whole_run_records(path, records: list[dict]) -> list[dict]:
    """Every record of the run, across resumes: metrics.jsonl holds all of them (a resumed run appends, and
    steps trained again after the last checkpoint appear twice: the later record wins). Falls back to
    this process's records when the file cannot be read (e.g. on ranks other than the main one)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return records
    latest: dict[tuple, dict] = {}
    for line in lines:
        try:
            r = json.loads(line)
            latest[(r["kind"], r["step"])] = r
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash: skip it
    return sorted(latest.values(), key=lambda r: r["step"]) or records


def peak_memory_mib(run: Run) -> float:
    """Peak memory: on GPU the CUDA allocations since this run started (build_run resets the counter; memory
    other code holds on the device counts too), on CPU the resident set of the process (the OS keeps one
    high-water mark per process)."""
    import resource

    import torch
    if run.speed.device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(run.speed.device) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _fmt(key: str, v) -> str:
    if v is None:
        return "-"
    if key.endswith("_err") and isinstance(v, float):
        return f"{100 * v:.2f}%"
    if key in ("wall_s", "wall_s_total"):
        return fmt_time(v)
    if key.endswith("loss") and isinstance(v, float):
        return f"{v:.4g}"
    return f"{v:,.1f}" if isinstance(v, float) else str(v)
