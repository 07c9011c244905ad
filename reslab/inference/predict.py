"""Top-k predictions for image files, with class names and probabilities."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ReslabError
from ..utils.progress import Progress
from .spec import InferenceModel


@torch.inference_mode()
def predict(im: InferenceModel, paths: list[Path], top_k: int = 5, batch_size: int = 64,
            device: str | torch.device = "cpu", progress: bool = False) -> list[dict]:
    """[{"file", "top": [{"class", "index", "prob"}, ...]}] in the order of `paths`."""
    if top_k < 1 or batch_size < 1:
        raise ReslabError(f"top_k and batch_size must be >= 1, got {top_k} and {batch_size}")
    dev = torch.device(device)
    model = im.model.to(dev).eval()
    k = min(top_k, len(im.classes))
    out: list[dict] = []
    bar = Progress(len(paths), desc="predict", unit="img", enabled=progress)
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        x = im.prepare(im.load(chunk)).to(dev)
        probs = torch.softmax(model(x).float(), dim=1).cpu()
        p, idx = probs.topk(k, dim=1)
        for f, pr, ix in zip(chunk, p.tolist(), idx.tolist()):
            out.append({"file": str(f), "top": [{"class": im.classes[i], "index": i, "prob": q} for q, i in zip(pr, ix)]})
        bar.update(len(out))
    bar.close()
    return out
