"""What `reslab analyze` does: pick models / checkpoints, a batch of real images, measure, write CSV + PNG."""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.preprocessing import normalize
from ..data.sources import input_geometry, prepared_catalog, sample_split
from ..errors import ReslabError
from ..models import build_model, read_checkpoint
from ..models.factory import model_from_checkpoint
from ..models.weights import Checkpoint
from ..models.resnet import ResNet
from ..utils.plotting import pyplot
from ..utils.table import format_table
from .gradients import block_gradient_norms, gradient_correlation
from .responses import layer_responses


@dataclass
class Target:
    label: str
    model: ResNet


def twin_of(name: str) -> str:
    return name.replace("plain", "resnet", 1) if name.startswith("plain") else re.sub(r"^resnet", "plain", name)


def checkpoints_of(path: Path) -> list[Path]:
    """Every step-* checkpoint of a run folder (in order), or the one file/folder given."""
    ck = path / "checkpoints"
    if ck.is_dir():
        steps = sorted(d for d in ck.iterdir() if re.match(r"step-\d{8}$", d.name))
        return [d / "model.safetensors" for d in steps]
    if path.is_dir() and (path / "model.safetensors").is_file():
        return [path / "model.safetensors"]
    if path.is_file():
        return [path]
    raise ReslabError(f"no checkpoints under {path}")


def open_checkpoints(spec: str, model: str | None = None) -> list[tuple[str, Checkpoint, object]]:
    """(label, checkpoint, named set or None) for every kept checkpoint of a run folder, or the one file,
    checkpoint folder or pretrained set named by `spec` ("resnet56.akamaster", "tv2" with `model`). A name
    wins over a folder that holds no weights (`reslab` inside a reslab checkout), as everywhere."""
    from ..hub.open import names_weights, open_checkpoint
    path = Path(spec)
    if path.exists():
        try:
            files = checkpoints_of(path)
        except ReslabError:
            if not names_weights(spec, model):
                raise
        else:
            return [(f"step {c.metadata.get('step', p.parent.name)}", c, None) for p in files
                    for c in [read_checkpoint(p)]]
    opened = open_checkpoint(spec, model)
    return [(opened.weight_set.name if opened.weight_set else spec, opened.checkpoint, opened.weight_set)]


def real_batch(data: str | None, n: int, split: str = "train", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """n images of `split` of `data` (the digits by default: these analyses study fresh networks too), as
    the square path's evaluation transform gives them, normalised with the data's statistics."""
    cat = prepared_catalog(data or "digits")
    cfg = input_geometry(cat, "square", "auto", 0, 0.0, None, "bilinear")[0]
    _, s = sample_split(data or "digits", split, cfg, n, seed)
    return normalize(s.images, cfg.mean, cfg.std), s.labels, len(cat.classes)


def analyze_gradients(models: list[str], weights: str | None = None, data: str | None = None, batch: int = 128,
                      twins: bool = True, out: str = "runs/analysis-gradients", seed: int = 0) -> list[dict]:
    x, y, ncls = real_batch(data, batch, seed=seed)
    targets: list[Target] = []
    names = list(models) + ([twin_of(m) for m in models if twin_of(m) != m and twin_of(m) not in models] if twins else [])
    for name in names:
        torch.manual_seed(seed)
        targets.append(Target(f"{name} (init)", build_model(name, num_classes=ncls)))
    if weights:
        for label, ckpt, _ in open_checkpoints(weights, models[0] if models else None):
            net = model_from_checkpoint(ckpt, models[0] if models else None, weights)
            targets.append(Target(f"{models[0] if models else 'model'} ({label})", net))
    rows, curves = [], {}
    for t in targets:
        norms = block_gradient_norms(t.model, x, y)
        corr = gradient_correlation(t.model, x[: min(16, len(x))], seed=seed)
        curves[t.label] = norms
        rows.append({"model": t.label, "blocks": len(norms) - 1, "first": norms[0], "last": norms[-1],
                     "ratio": norms[0] / norms[-1], "neighbour_cos": corr["neighbour_cos"], "decay": corr["decay"]})
    _write_gradients(Path(out), rows, curves)
    return rows


def _write_gradients(out: Path, rows: list[dict], curves: dict[str, list[float]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _write_long_csv(out / "gradients.csv", ["model", "block", "grad_norm"], curves, start=0)
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, norms in curves.items():
        ax.plot(range(len(norms)), norms, "--" if label.startswith("plain") else "-", label=label)
    ax.set_yscale("log"), ax.set_xlabel("block index (input of block l; last = output of the last block)")
    ax.set_ylabel("||dL/dx_l||"), ax.grid(alpha=0.3), ax.legend(fontsize=8)
    ax.set_title("gradient norm at each block's input (one batch of real images, BN in training mode)")
    fig.tight_layout()
    fig.savefig(out / "gradients.png", dpi=110)
    plt.close(fig)


def _write_long_csv(path: Path, header: list[str], curves: dict[str, list[float]], start: int) -> None:
    """One row per (model, index, value): easy to load into any analysis tool."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for label, values in curves.items():
            w.writerows([label, i, v] for i, v in enumerate(values, start=start))


def format_gradient_rows(rows: list[dict]) -> str:
    shown = [{"model": r["model"], "blocks": r["blocks"], "ratio": f"{r['ratio']:.3g}",
              "cos": f"{r['neighbour_cos']:.3f}"} for r in rows]
    return format_table(shown, [("model", "model"), ("blocks", "blocks"), ("ratio", "|g first| / |g last|"),
                                ("cos", "neighbour-input gradient cosine")], right=("blocks", "ratio", "cos"))


def analyze_responses(checkpoints: list[str], model: str | None = None, data: str | None = None, images: int = 1000,
                      out: str = "runs/analysis-responses") -> list[dict]:
    from ..hub.open import checkpoint_input
    from ..training.eval_run import recorded_data
    rows, curves = [], {}
    for c in checkpoints:
        _, ckpt, ws = open_checkpoints(c, model)[-1]  # a run folder: its last checkpoint
        net = model_from_checkpoint(ckpt, model, c)
        cfg = checkpoint_input(ckpt, net.cfg)
        _, split = sample_split(data or recorded_data(ckpt, ws, c), "auto", cfg, images)
        batches = (normalize(split.images[i:i + 250], cfg.mean, cfg.std) for i in range(0, len(split), 250))
        stds = layer_responses(net, batches)
        label = ckpt.model_name or model or Path(c).name
        label = f"{label} ({Path(c).name})" if label in curves else label
        curves[label] = stds
        rows.append({"model": label, "layers": len(stds), "mean_std": sum(stds) / len(stds), "max_std": max(stds)})
    _write_responses(Path(out), rows, curves)
    return rows


def _write_responses(out: Path, rows: list[dict], curves: dict[str, list[float]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _write_long_csv(out / "responses.csv", ["model", "layer", "std"], curves, start=1)
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 7))
    for label, stds in curves.items():
        style = "--" if "plain" in label else "-"
        a1.plot(range(1, len(stds) + 1), stds, style, label=label)
        a2.plot(range(1, len(stds) + 1), sorted(stds, reverse=True), style, label=label)
    a1.set_xlabel("layer index (original order)"), a2.set_xlabel("layer index (sorted by magnitude)")
    for a in (a1, a2):
        a.set_ylabel("std"), a.grid(alpha=0.3), a.legend(fontsize=8)
    a1.set_title("std of 3x3 layer responses (after BN, before addition/ReLU), test images")
    fig.tight_layout()
    fig.savefig(out / "responses.png", dpi=110)
    plt.close(fig)
