"""Embeddings for image files: the pooled features before the classifier, or chosen stage maps,
saved as .npy (one array) or .safetensors (several, with the file list in the metadata)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import ReslabError
from ..utils.io import atomic_write
from ..utils.progress import Progress
from .spec import InferenceModel


def parse_layers(spec: str, n_stages: int) -> list[str]:
    """"pooled", "4", "3,4", "pooled,stage2" -> ["pooled", "stage4", ...]; stage 0 is the stem."""
    out = []
    for part in (s.strip() for s in spec.split(",") if s.strip()):
        name = part if part == "pooled" else f"stage{part.removeprefix('stage')}"
        idx = name.removeprefix("stage")
        if name != "pooled" and not (idx.isdigit() and 0 <= int(idx) <= n_stages):
            raise ReslabError(f"--layers {part!r}: use 'pooled' or a stage index 0 (stem) .. {n_stages}")
        out.append(name)
    if not out:
        raise ReslabError("--layers is empty: use 'pooled' or stage indices, e.g. pooled,3")
    return out


@torch.inference_mode()
def extract_features(im: InferenceModel, paths: list[Path], layers: Sequence[str] = ("pooled",),
                     batch_size: int = 64, device: str | torch.device = "cpu", progress: bool = False) -> dict[str, np.ndarray]:
    if batch_size < 1:
        raise ReslabError(f"batch_size must be >= 1, got {batch_size}")
    dev = torch.device(device)
    model = im.model.to(dev).eval()
    stages = sorted({int(n.removeprefix("stage")) for n in layers if n != "pooled"})
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in layers}
    bar = Progress(len(paths), desc="features", unit="img", enabled=progress)
    done = 0
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        x = im.prepare(im.load(chunk)).to(dev)
        if "pooled" in chunks:
            chunks["pooled"].append(model.forward_head(model.forward_features(x), pre_logits=True).float().cpu().numpy())
        if stages:
            for i, fmap in zip(stages, model.forward_stages(x, stages)):
                chunks[f"stage{i}"].append(fmap.float().cpu().numpy())
        done += len(chunk)
        bar.update(done)
    bar.close()
    return {n: np.concatenate(c) for n, c in chunks.items()}


def save_features(features: dict[str, np.ndarray], paths: list[Path], out: str | Path) -> Path:
    out = Path(out)
    files = [str(p) for p in paths]
    if out.suffix == ".npy":
        if len(features) != 1:
            raise ReslabError(f".npy holds one array; {len(features)} layers asked for ({', '.join(features)}): "
                              f"use a .safetensors output")
        (arr,) = features.values()
        atomic_write(out, lambda tmp: _save_npy(tmp, arr))
        atomic_write(out.with_suffix(".files.json"), lambda tmp: tmp.write_text(json.dumps(files, indent=0)))
    elif out.suffix == ".safetensors":
        from safetensors.numpy import save_file
        tensors = {k: np.ascontiguousarray(v) for k, v in features.items()}
        atomic_write(out, lambda tmp: save_file(tensors, str(tmp), metadata={"files": json.dumps(files)}))
    else:
        raise ReslabError(f"--out {out}: use a .npy or .safetensors file name")
    return out


def _save_npy(tmp: Path, arr: np.ndarray) -> None:
    with open(tmp, "wb") as f:
        np.save(f, arr)
