"""reslab on fast.ai's Imagenette leaderboard: train the `imagenette` recipe over seeds (or collect runs
already trained) and write the table beside the leaderboard's own rows, with the runs' wall times and
their validation curves.

    # train 3 seeds of the 5-epoch row, then report (each run is `reslab train --recipe imagenette ...`)
    python benchmarks/imagenette_leaderboard.py --train --seeds 0,1,2 --epochs 5 --out runs/imagenette-5ep
    # report on runs trained before (run folders holding summary.json and metrics.jsonl)
    python benchmarks/imagenette_leaderboard.py --collect runs/imagenette-5ep/seed-* --epochs 5 --out report/
    # variants: one row per run, naming what each changed against the recipe (read from its config.yaml)
    python benchmarks/imagenette_leaderboard.py --ablation --collect runs/recipe-s0 runs/blur-s0 --out report/

Leaderboard (github.com/fastai/imagenette README; top-1 on val, random init, no test-time tricks, no
validation size above the training size): 128 px, 5 epochs 85.77 % (mean of 5); 128 px, 20 epochs
91.57 % (mean of 5). The shared copy reslab trains on holds the imagenette2 split (9,469 / 3,925 images)
as 224 x 224 JPEGs, not the full-size originals: said beside every figure.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
LEADERBOARD = {(128, 5): (85.77, "fastai2 mini-net, mean of 5"), (128, 20): (91.57, "fastai2 + MaxBlurPool, mean of 5"),
               (192, 5): (86.76, ""), (192, 20): (92.50, "")}


def train(seeds: list[int], epochs: int, out: Path, extra: list[str]) -> list[Path]:
    data = f"{SHARED / 'imagenette-224-train.tar'},{SHARED / 'imagenette-224-val.tar'}"
    cmd = [sys.executable, "-m", "reslab", "train", "--recipe", "imagenette", "--data", data, "--epochs", str(epochs),
           "--out", str(out.parent), "--name", out.name, "--seeds", ",".join(map(str, seeds)), *extra]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return [out / f"seed-{s}" for s in seeds]


def collect(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = {}
    for r in records:
        if r.get("kind") == "eval":
            evals[r["step"]] = 100 * (1 - r["val/top1_err"])  # later records of a step win (resumes)
    import yaml
    config = (run / "config.yaml").read_text() if (run / "config.yaml").exists() else ""
    cfg = (yaml.safe_load(config) or {}) if config else {}
    return {"run": str(run), "top1": round(100 * (1 - summary["val/top1_err"]), 2), "wall_s": summary["wall_s_total"],
            "train_img_s": summary["train_img_s"], "model": summary["model"], "curve": sorted(evals.items()),
            "crop": int((cfg.get("data") or {}).get("crop") or 128),
            "epochs": (cfg.get("schedule") or {}).get("epochs", 0), "seed": (cfg.get("run") or {}).get("seed"),
            "config": config}


def report(runs: list[dict], epochs: int, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    accs = [r["top1"] for r in runs]
    size = runs[0]["crop"]
    board, entry = LEADERBOARD.get((size, epochs), (None, ""))
    mean = statistics.mean(accs)
    sd = statistics.stdev(accs) if len(accs) > 1 else None  # one run has no spread to report
    figure = f"**{mean:.2f}**" if sd is None else f"**{mean:.2f} ± {sd:.2f}** ({', '.join(f'{a:.2f}' for a in accs)})"
    lines = ["| | top-1 (%) | runs | wall time per run |", "|---|---|---|---|",
             f"| reslab `{runs[0]['model']}`, {size} px, {epochs} epochs (shared 224-px copy, 2 CPU cores) | "
             f"{figure} | {len(accs)} | "
             f"{statistics.mean(r['wall_s'] for r in runs) / 60:.0f} min |"]
    if board is not None:
        lines.append(f"| leaderboard, {size} px, {epochs} epochs ({entry}) | {board:.2f} | 5 | (GPU) |")
    table = "\n".join(lines)
    (out / "leaderboard.md").write_text(table + "\n")
    (out / "leaderboard.json").write_text(json.dumps({"epochs": epochs, "size": size, "mean": mean, "std": sd,
                                                      "leaderboard": board, "runs": runs}, indent=1))
    _plot(runs, board, out / "leaderboard.png", f"Imagenette {size} px, {epochs} epochs")
    return table


# what a run's config may differ in without being a variant of the recipe: where it ran, its name, its data paths
NOT_A_CHANGE = ("data.source", "data.cache_dir", "data.workers", "run.out", "run.name", "run.seed", "run.progress",
                "run.device", "run.tensorboard", "recipe")


def changes(config_text: str) -> list[str]:
    """What a run's config.yaml sets differently from its recipe as the recipe reads today (`key=value`, sorted),
    the seed aside; a run without a recipe against reslab's defaults."""
    import yaml

    from reslab.training.config import TrainConfig, build_config, flatten_config, to_yaml
    ran = flatten_config(yaml.safe_load(config_text) or {})
    recipe = ran.get("recipe") or ""
    base = flatten_config(yaml.safe_load(to_yaml(build_config(recipe) if recipe else TrainConfig())) or {})
    # a config field the run's config lacks was added after it ran: not a change; a model argument of the recipe
    # it lacks was dropped (a run's model_args replace the recipe's): a change
    dropped = [f"{k}=<unset>" for k in sorted(base) if k.startswith("model_args.") and k not in ran]
    return sorted(dropped + [f"{k}={_show(v)}" for k, v in ran.items() if k not in NOT_A_CHANGE and v != base.get(k)])


def _show(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, list) else str(v)


def ablation(runs: list[dict], out: Path) -> str:
    """One row per run: what it changed against the recipe, its top-1, wall time and speed; and its curve."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| run | changes against the recipe | seed | val top-1 | wall time | train img/s |",
             "|---|---|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {Path(r['run']).name} | {', '.join(f'`{c}`' for c in r['changes']) or 'none'} | {r['seed']} | "
                     f"{r['top1']:.2f} % | {r['wall_s'] / 60:.1f} min | {r['train_img_s']:.1f} |")
    table = "\n".join(lines)
    (out / "ablation.md").write_text(table + "\n")
    (out / "ablation.json").write_text(json.dumps({"runs": runs}, indent=1))
    epochs = {int(r["epochs"]) for r in runs}  # the board's line only where every run had the same length
    board = LEADERBOARD.get((runs[0]["crop"], epochs.pop()), (None, ""))[0] if len(epochs) == 1 else None
    _plot(runs, board, out / "ablation.png", f"Imagenette {runs[0]['crop']} px: the variants run")
    return table


def _plot(runs: list[dict], board: float | None, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in runs:
        steps, acc = zip(*r["curve"]) if r["curve"] else ((), ())
        total = steps[-1] if steps else 1
        ax.plot([s / total for s in steps], acc, "-o", ms=3, label=f"{Path(r['run']).name}: {r['top1']:.2f} %")
    if board is not None:
        ax.axhline(board, color="k", ls="--", lw=1, label=f"leaderboard {board:.2f} %")
    ax.set(xlabel="fraction of training", ylabel="val top-1 (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", action="store_true", help="train the seeds first (else --collect runs)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--collect", nargs="*", default=[], help="run folders to report on")
    ap.add_argument("--ablation", action="store_true",
                    help="one row per run with what it changed against its recipe (variants), not a mean over seeds")
    ap.add_argument("--out", required=True, help="where the runs go (--train) and the report is written")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more `reslab train` flags")
    args = ap.parse_args(argv)
    out = Path(args.out)
    runs = [Path(r) for r in args.collect]
    if args.train:
        runs += train([int(s) for s in args.seeds.split(",")], args.epochs, out, [a for a in args.extra if a != "--"])
    if not runs:
        ap.error("nothing to report: --train, or --collect RUN...")
    collected = [collect(r) for r in runs]
    if args.ablation:  # only here: the plain report must not depend on today's recipe still building
        for r in collected:
            r["changes"] = changes(r["config"]) if r["config"] else []
    for r in collected:
        r.pop("config")
    print(ablation(collected, out) if args.ablation else report(collected, args.epochs, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
