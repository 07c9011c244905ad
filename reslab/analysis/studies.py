"""`reslab analyze landscape` and `reslab analyze lesion`: checkpoints in, CSV + PNG + summary.md out."""
from __future__ import annotations

import csv
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.preprocessing import normalize
from ..data.sources import sample_split
from ..errors import ReslabError
from ..hub.classes import same_classes
from ..hub.open import checkpoint_input
from ..models.factory import model_from_checkpoint
from ..models.resnet import ResNet
from ..models.weights import Checkpoint
from ..training.config import RunConfig
from ..training.device import resolve_speed
from ..training.eval_run import recorded_data
from ..utils.io import atomic_write
from ..utils.plotting import pyplot
from ..utils.progress import Progress
from ..utils.table import format_table
from .commands import open_checkpoints
from .landscape import loss_landscape, roughness
from .lesion import lesioned, path_length_distribution, random_deletions, residual_blocks
from .paths import effective_lengths, gradient_per_path_length, routable


@dataclass
class Target:
    label: str
    model: ResNet
    ckpt: Checkpoint
    weight_set: object = None  # the named set it came from, if any


def load_targets(specs: list[str], model: str | None, every_checkpoint: bool = False) -> list[Target]:
    """One target per spec (a run folder: its last checkpoint, or every kept one)."""
    out = []
    for spec in specs:
        found = open_checkpoints(spec, model)
        for label, ckpt, ws in (found if every_checkpoint else found[-1:]):
            name = ckpt.model_name or model or Path(spec).name
            tag = f"{name} ({label})" if every_checkpoint else name
            if any(t.label == tag for t in out):
                tag = f"{tag} [{Path(spec).name}]"
            out.append(Target(tag, model_from_checkpoint(ckpt, model, spec), ckpt, ws))
    if not out:
        raise ReslabError("no checkpoints given")
    return out


def network_inputs(t: Target, data: str | None, split: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """n images of `split` (fixed by `seed`) through the checkpoint's evaluation transform, normalised.
    The data defaults to what the checkpoint was trained on, when it says so; its classes must be the
    checkpoint's."""
    ckpt = t.ckpt
    data = data or recorded_data(ckpt, t.weight_set, t.label)
    cfg = checkpoint_input(ckpt, t.model.cfg)
    cat, s = sample_split(data, split, cfg, n, seed)
    if len(cat.classes) != t.model.cfg.num_classes or (ckpt.classes and not same_classes(ckpt.classes, cat.classes)):
        raise ReslabError(f"--data {data} has other classes than {t.label} ({len(cat.classes)}: {cat.classes[:4]}... "
                          f"vs {t.model.cfg.num_classes}{': ' + str(ckpt.classes[:4]) if ckpt.classes else ''}...)")
    return normalize(s.images, cfg.mean, cfg.std), s.labels, cat.name


# ----------------------------------------------------------------------------------------------- landscape
def analyze_landscape(specs: list[str], model: str | None = None, data: str | None = None, *, steps: int = 11,
                      span: float = 1.0, dims: int = 2, images: int = 1000, seed: int = 0, bn: str = "frozen",
                      device: str = "auto", amp: str = "auto", every_checkpoint: bool = False,
                      out: str = "runs/analysis-landscape") -> list[dict]:
    speed = resolve_speed(RunConfig(device=device, amp=amp))
    targets = load_targets(specs, model, every_checkpoint)
    rows, lands, t0 = [], {}, time.time()
    for t in targets:
        x, y, name = network_inputs(t, data, "train", images, seed)
        land = loss_landscape(t.model, x, y, steps=steps, span=span, dims=dims, seed=seed, bn=bn,
                              device=speed.device, amp_dtype=speed.amp_dtype, desc=f"landscape {t.label}")
        lands[t.label] = land
        rows.append({"model": t.label, **{k: round(v, 4) for k, v in roughness(land).items()},
                     "err_centre_%": round(100 * float(land.err.flatten()[land.err.numel() // 2]), 2)})
    out_dir = Path(out)
    _landscape_files(out_dir, lands, rows, dims)
    _summary(out_dir, "Loss landscapes (Li et al. 2018)", rows, [
        f"{len(targets)} checkpoint(s), {images} training images of `{name}`, a {steps}"
        f"{'x' + str(steps) if dims == 2 else ''} grid over [-{span}, {span}], filter-normalised random directions "
        f"(seed {seed}, the same for every checkpoint), BN statistics {bn}; {time.time() - t0:.0f} s on {speed.device}",
        "local_minima: grid points lower than all their neighbours (a convex-like bowl has 1); non_convex_share: "
        "share of interior points where the finite-difference Hessian has a negative eigenvalue.",
        "![contours](landscape.png)\n\n![1-D](landscape_1d.png)"])
    return rows


def _landscape_files(out: Path, lands: dict, rows: list[dict], dims: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "landscape.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "a", "b", "loss", "top1_err"])
        for label, land in lands.items():
            c = land.coords
            for i, a in enumerate(c):
                for j, b in (enumerate(c) if dims == 2 else [(None, "")]):
                    idx = (i, j) if dims == 2 else (i,)
                    w.writerow([label, f"{a:.4f}", b if b == "" else f"{b:.4f}", f"{float(land.loss[idx]):.6f}",
                                f"{float(land.err[idx]):.6f}"])
    plt = pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for label, land in lands.items():
        mid = land.loss.shape[1] // 2 if dims == 2 else None
        loss = land.loss[:, mid] if dims == 2 else land.loss
        err = land.err[:, mid] if dims == 2 else land.err
        ax[0].plot(land.coords, loss.tolist(), "-o", ms=3, label=label)
        ax[1].plot(land.coords, (100 * err).tolist(), "-o", ms=3, label=label)
    ax[0].set(xlabel="alpha (direction 1)", ylabel="training loss", yscale="log")
    ax[1].set(xlabel="alpha (direction 1)", ylabel="training error (%)")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "landscape_1d.png", dpi=110)
    plt.close(fig)
    if dims != 2:
        return
    n = len(lands)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.2), squeeze=False)
    import numpy as np
    for ax, (label, land) in zip(axes[0], lands.items()):
        z = np.log(land.loss.numpy().T)  # rows: direction 2
        cs = ax.contour(land.coords, land.coords, z, levels=np.linspace(z.min(), z.max(), 25), cmap="viridis")
        ax.clabel(cs, cs.levels[::4], fmt=lambda v: f"{np.exp(v):.2g}", fontsize=6)
        ax.plot(0, 0, "r+", ms=10)
        ax.set_title(f"{label}\nlog training loss", fontsize=9)
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(out / "landscape.png", dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------- lesion
def analyze_lesion(specs: list[str], model: str | None = None, data: str | None = None, *, images: int = 2000,
                   draws: int = 5, seed: int = 0, device: str = "auto", amp: str = "auto",
                   path_draws: int = 3, path_images: int = 128, out: str = "runs/analysis-lesion") -> list[dict]:
    speed = resolve_speed(RunConfig(device=device, amp=amp))
    targets = load_targets(specs, model)
    results, rows, t0 = {}, [], time.time()
    for t in targets:
        x, y, name = network_inputs(t, data, "auto", images, seed)
        net = t.model.to(speed.device).eval()
        blocks = residual_blocks(net)
        n = len(blocks)
        plan = [("none", [])] + [(f"single {d}", [d]) for d in range(n)]
        plan += [(f"k={k}", dels) for k in range(1, n + 1) for dels in random_deletions(n, k, draws, seed)]
        bar = Progress(len(plan), desc=f"lesion {t.label}", unit="eval")
        errs = []
        for i, (kind, dels) in enumerate(plan):
            with lesioned(net, dels):
                errs.append((kind, dels, _error(net, x, y, speed)))
            bar.update(i + 1)
        bar.close()
        base = errs[0][2]
        single = [e for k, _, e in errs if k.startswith("single")]
        by_k = {k: [e for kind, dels, e in errs if kind == f"k={k}"] for k in range(1, n + 1)}
        down = [d for d, (stage, i, _) in enumerate(blocks) if i == 0 and stage != blocks[0][0]]
        results[t.label] = {"base": base, "single": single, "by_k": by_k, "downsampling": down,
                            "stages": [s for s, _, _ in blocks], "n": n}
        paths = _path_gradients(t.label, net, x[:path_images], y[:path_images], path_draws, seed, speed)
        results[t.label]["paths"] = paths
        inner = [e for d, e in enumerate(single) if d not in down]
        rows.append({"model": t.label, "blocks": n, "err": round(100 * base, 2),
                     "single_median": round(100 * statistics.median(inner), 2) if inner else "",
                     "single_worst": round(100 * max(single), 2), "downsampling": ", ".join(
                         f"{100 * single[d]:.1f}" for d in down),
                     "k=n/4": round(100 * statistics.mean(by_k[max(1, n // 4)]), 2),
                     "grad_90%_lengths": "{}-{}".format(*effective_lengths(paths)) if paths else "-"})
    out_dir = Path(out)
    _lesion_files(out_dir, results, name)
    _summary(out_dir, "Lesion study (Veit et al. 2016)", rows, [
        f"test error (%) on {images} test images of `{name}` after deleting residual blocks at test time; "
        f"{draws} random draws per k; {time.time() - t0:.0f} s on {speed.device}. A deleted block outputs its "
        f"shortcut: the identity inside a stage, the option-A/B shortcut of a downsampling block (its residual "
        f"branch removed); a deleted plain block becomes the identity (option-A subsampling and zero padding where "
        f"it changes the shape).",
        "single_median: median error over single deletions of the non-downsampling blocks; downsampling: the error "
        "after deleting each downsampling block; k=n/4: mean error with a quarter of the blocks deleted.",
        f"grad_90%_lengths: the shortest range of path lengths that carries 90 % of the input gradient (Veit et al., "
        f"Fig. 6c): the norm of one length-k path's gradient at the first block's input (mean over {path_draws} random "
        f"routings of {path_images} images, BN in eval mode, fp32) times the number of such paths, C(n, k); "
        "`path_gradients.csv`. Plain nets have a single path ('-').",
        "![lesion](lesion.png)\n\n![paths](path_lengths.png)\n\n![path gradients](path_gradients.png)"])
    return rows


def _path_gradients(label: str, net, x, y, draws: int, seed: int, speed) -> list[dict]:
    """Gradient per path length for residual nets of the standard units; [] for plain nets or draws=0."""
    blocks = residual_blocks(net)
    if draws == 0 or not all(routable(b) for _, _, b in blocks):
        return []
    n = len(blocks)
    bar = Progress(sum(min(draws, math.comb(n, k)) for k in range(n + 1)), desc=f"path gradients {label}",
                   unit="backward")
    rows = gradient_per_path_length(net, x.to(speed.device), y.to(speed.device), draws, seed, progress=bar.update)
    bar.close()
    return rows


@torch.no_grad()
def _error(net, x, y, speed, batch: int = 500) -> float:
    wrong = 0
    for s in range(0, len(x), batch):
        with torch.autocast(speed.device.type, dtype=speed.amp_dtype, enabled=speed.amp_dtype is not None):
            logits = net(x[s:s + batch].to(speed.device)).float()
        wrong += int((logits.argmax(1).cpu() != y[s:s + batch]).sum())
    return wrong / len(x)


def _lesion_files(out: Path, results: dict, data_name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "lesion.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "kind", "k_or_block", "top1_err_mean", "top1_err_std", "draws"])
        for label, r in results.items():
            w.writerow([label, "none", 0, f"{r['base']:.6f}", "0", 1])
            for d, e in enumerate(r["single"]):
                w.writerow([label, "single", d, f"{e:.6f}", "0", 1])
            for k, es in r["by_k"].items():
                w.writerow([label, "random_k", k, f"{statistics.mean(es):.6f}",
                            f"{statistics.stdev(es) if len(es) > 1 else 0:.6f}", len(es)])
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for i, (label, r) in enumerate(results.items()):
        c = f"C{i}"
        a1.plot(range(r["n"]), [100 * e for e in r["single"]], "-o", ms=3, color=c, label=label)
        for d in r["downsampling"]:
            a1.plot(d, 100 * r["single"][d], "s", ms=8, mfc="none", color=c)
        a1.axhline(100 * r["base"], color=c, ls=":", lw=1)
        ks = sorted(r["by_k"])
        means = [100 * statistics.mean(r["by_k"][k]) for k in ks]
        sds = [100 * (statistics.stdev(r["by_k"][k]) if len(r["by_k"][k]) > 1 else 0) for k in ks]
        a2.errorbar(ks, means, yerr=sds, fmt="-o", ms=3, capsize=2, color=c, label=label)
    a1.set(xlabel="deleted block (squares: downsampling blocks; dotted: no deletion)", ylabel="test error (%)",
           title="deleting one block")
    a2.set(xlabel="blocks deleted at random (k)", ylabel="test error (%)", title="deleting k blocks (mean ± std)")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "lesion.png", dpi=110)
    plt.close(fig)
    _path_gradient_files(out, results, plt)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, r in results.items():
        dist = path_length_distribution(r["n"])
        ax.plot(range(r["n"] + 1), dist, "-o", ms=3, label=f"{label} ({r['n']} blocks, 2^{r['n']} paths)")
    ax.set(xlabel="path length (residual branches passed)", ylabel="share of paths", title="path lengths (binomial)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "path_lengths.png", dpi=110)
    plt.close(fig)


def _path_gradient_files(out: Path, results: dict, plt) -> None:
    measured = {label: r["paths"] for label, r in results.items() if r.get("paths")}
    with open(out / "path_gradients.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "k", "paths", "grad_norm_mean", "grad_norm_std", "share_of_total"])
        for label, rows in measured.items():
            for r in rows:
                w.writerow([label, r["k"], r["paths"], f"{r['grad_norm_mean']:.6e}", f"{r['grad_norm_std']:.6e}",
                            f"{r['share']:.6f}"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for label, rows in measured.items():
        ks = [r["k"] for r in rows]
        a1.errorbar(ks, [r["grad_norm_mean"] for r in rows], yerr=[r["grad_norm_std"] for r in rows], fmt="-o",
                    ms=3, capsize=2, label=label)
        a2.plot(ks, [r["share"] for r in rows], "-o", ms=3, label=label)
    a1.set(yscale="log", xlabel="path length k (residual branches the gradient passed)",
           ylabel="input-gradient norm of one path", title="gradient magnitude per path length (Veit Fig. 6b)")
    a2.set(xlabel="path length k", ylabel="share of the total gradient",
           title="times C(n, k) paths: share of the gradient (Fig. 6c)")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        if measured:
            a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "path_gradients.png", dpi=110)
    plt.close(fig)


def _summary(out: Path, title: str, rows: list[dict], notes: list[str]) -> None:
    cols = [(k, k) for k in rows[0]] if rows else []
    command = " ".join(["reslab", *sys.argv[1:]]) if sys.argv[1:2] == ["analyze"] else ""
    text = f"# {title}\n\n" + (f"`{command}`\n\n" if command else "") + "```\n" + format_table(rows, cols) + "\n```\n\n"
    text += "\n\n".join(notes) + "\n"
    atomic_write(out / "summary.md", lambda p: p.write_text(text))
    atomic_write(out / "summary.json", lambda p: p.write_text(json.dumps(rows, indent=1)))
