"""An experiment's report: table (CSV + Markdown), Fig. 6-style plot, summary.md with the facts."""
from __future__ import annotations

import csv
import os
import platform
import statistics
from pathlib import Path

import torch

from ..utils.plotting import plot_series, pyplot
from .definitions import Experiment


def final_train_err(records: list[dict], last: int = 2) -> float:
    """Training error (augmented batches, as the papers plot it) averaged over the last `last` logs."""
    errs = [r["err"] for r in records if r["kind"] == "train"][-last:]
    return sum(errs) / len(errs)


def _test_key(records: list[dict]) -> str:
    keys = [k for r in records if r["kind"] == "eval" for k in r if k.endswith("/top1_err")]
    return keys[0] if keys else ""


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _trained_as(model: str, run_dir: Path) -> str:
    """The arm's model, with the depth it was actually built at when a budget changed it."""
    import yaml
    cfg_path = run_dir / "config.yaml"
    depth = (yaml.safe_load(cfg_path.read_text()) or {}).get("model_args", {}).get("depth") if cfg_path.is_file() else None
    return f"{model} built at depth {depth}" if depth else model


def rows_for(exp: Experiment, results) -> list[dict]:
    rows = []
    for arm in exp.arms:
        rs = [r for r in results if r.arm is arm]
        if not rs:
            continue
        tr = [100 * final_train_err(r.records) for r in rs]
        te = [100 * r.summary.get(_test_key(r.records), float("nan")) for r in rs]
        rows.append({"arm": arm.label, "model": _trained_as(arm.model, rs[0].dir), "args": " ".join(f"{k}={v}" for k, v in arm.model_args.items()),
                     "train_err": _mean_sd(tr), "test_err": _mean_sd(te), "train_err_mean": statistics.mean(tr),
                     "test_err_mean": statistics.mean(te), "paper_err": "" if arm.paper_err is None else f"{arm.paper_err:.2f}",
                     "wall_s": f"{statistics.mean(r.summary['wall_s'] for r in rs):.0f}",
                     "peak_mem_mib": f"{max(r.summary.get('peak_mem_mib', 0) for r in rs):.0f}", "seeds": len(rs)})
    return rows


def plot_curves(exp: Experiment, results, path: Path) -> None:
    """Error against iterations: training dashed, test solid (2015 paper, Fig. 6); plain | residual panels
    for the degradation experiment, one panel otherwise."""
    plt = pyplot()
    groups = ([("plain", [a for a in exp.arms if a.model.startswith("plain")]),
               ("residual", [a for a in exp.arms if not a.model.startswith("plain")])]
              if exp.name == "degradation" else [(exp.title, list(exp.arms))])
    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 4.5), squeeze=False)
    for ax, (title, arms) in zip(axes[0], groups):
        for i, arm in enumerate(arms):
            color = f"C{i}"
            for j, r in enumerate(r for r in results if r.arm is arm):
                tr = [x for x in r.records if x["kind"] == "train"]
                key = _test_key(r.records)
                ev = [x for x in r.records if x["kind"] == "eval" and key in x]
                lab = arm.label if j == 0 else None
                plot_series(ax, [x["step"] for x in tr], [100 * x["err"] for x in tr], "--", color=color, alpha=0.8)
                plot_series(ax, [x["step"] for x in ev], [100 * x[key] for x in ev], "-", color=color, label=lab)
        ax.set_title(title), ax.set_xlabel("iteration"), ax.set_ylabel("error (%)"), ax.grid(alpha=0.3)
        ax.legend(title="dashed: training, solid: test")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def claim_check(exp: Experiment, rows: list[dict]) -> str:
    """What the measurements say about the experiment's claim (computed, never assumed)."""
    by = {r["arm"]: r for r in rows}
    if exp.name == "degradation" and {"plain-20", "plain-56", "ResNet-20", "ResNet-56"} <= set(by):
        p20, p56 = by["plain-20"]["train_err_mean"], by["plain-56"]["train_err_mean"]
        r20, r56 = by["ResNet-20"]["train_err_mean"], by["ResNet-56"]["train_err_mean"]
        return (f"- deeper plain net has higher training error than the shallower one: "
                f"**{'yes' if p56 > p20 else 'no'}** (plain-56 {p56:.2f} % vs plain-20 {p20:.2f} %)\n"
                f"- deeper ResNet has lower training error than the shallower one: "
                f"**{'yes' if r56 < r20 else 'no'}** (ResNet-56 {r56:.2f} % vs ResNet-20 {r20:.2f} %)")
    ranked = sorted(rows, key=lambda r: r["test_err_mean"])
    return "- ranking by test error (best first): " + ", ".join(f"{r['arm']} ({r['test_err_mean']:.2f} %)" for r in ranked)


def write_report(exp: Experiment, budget: str, data: str, seeds: list[int], results, root: Path, wall: float,
                 command: str) -> None:
    rows = rows_for(exp, results)
    cols = ["arm", "model", "args", "train_err", "test_err", "paper_err", "wall_s", "peak_mem_mib", "seeds"]
    with open(root / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    plot_curves(exp, results, root / "curves.png")
    head = "| arm | model | options | training error (%) | test error (%) | paper test error (%) | wall (s) | peak memory (MiB) |"
    table = [head, "|" + "---|" * 8]
    table += [f"| {r['arm']} | {r['model']} | {r['args']} | {r['train_err']} | {r['test_err']} | {r['paper_err']} | "
              f"{r['wall_s']} | {r['peak_mem_mib']} |" for r in rows]
    machine = (f"{platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}"
               + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"))
    text = f"""# {exp.title}

- command: `{command or f'reslab experiment {exp.name} --budget {budget}'}`
- budget: {budget}; data: `{data}`; seeds: {seeds}; machine: {machine}; total wall time {wall / 60:.1f} min
- the paper's claim: {exp.claim}

{os.linesep.join(table)}

Training error: the last two logged training-batch errors (augmented batches, as the papers' curves);
test error: the final evaluation{' on a fixed 2,000-image subset of the test set' if budget == 'quick' else ''}.
{"The quick budget trains 1/64 of the paper's schedule, so absolute numbers are not comparable with the papers' column." if budget == "quick" else "The papers trained on the original CIFAR-10 pixels: other copies of the data (e.g. JPEG-compressed) shift the absolute numbers."}

## What the measurements show
{claim_check(exp, rows)}

![curves](curves.png)
"""
    (root / "summary.md").write_text(text)
    print(text)
