"""Run checkpoints: an immutable folder per save, `last` and `best` links swapped atomically.

    RUN/checkpoints/step-00001000/model.safetensors   weights + model config, classes, preprocessing
    RUN/checkpoints/step-00001000/state.pt            optimizer, EMA, scaler, RNG, data position
    RUN/checkpoints/last -> step-00001000             (relative symlinks)
    RUN/checkpoints/best -> step-00000800

A folder is written under a temporary name and renamed into place only when complete, so a crash,
SIGKILL or full disk at any moment leaves every earlier checkpoint intact. state.pt holds only
tensors and plain containers: it loads with torch.load(weights_only=True).
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import ReslabError
from ..models.weights import save_weights

STEP_DIR = re.compile(r"^step-(\d{8})$")


def save_checkpoint(ckpt_root: Path, step: int, model: torch.nn.Module, state: dict[str, Any], meta: dict[str, Any],
                    *, best: bool = False, keep: int = 3) -> Path:
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".step-{step:08d}.", dir=ckpt_root))
    try:
        save_weights(model, tmp / "model.safetensors", name=meta.get("model", ""), extra=meta)
        torch.save(state, tmp / "state.pt")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():  # re-saving the same step (e.g. final save after a periodic one)
            shutil.rmtree(final)
        os.rename(tmp, final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ReslabError(f"disk full while saving a checkpoint under {ckpt_root}; earlier checkpoints are intact") from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _point(ckpt_root / "last", final.name)
    if best:
        _point(ckpt_root / "best", final.name)
    _prune(ckpt_root, keep)
    return final


def _point(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _prune(ckpt_root: Path, keep: int) -> None:
    pinned = {os.readlink(ckpt_root / n) for n in ("last", "best") if (ckpt_root / n).is_symlink()}
    steps = sorted(d for d in ckpt_root.iterdir() if STEP_DIR.match(d.name))
    for d in steps[:-keep]:
        if d.name not in pinned:
            shutil.rmtree(d, ignore_errors=True)
    for d in ckpt_root.glob(".step-*"):  # leftovers of a killed save
        shutil.rmtree(d, ignore_errors=True)


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A run folder, its checkpoints folder, or one checkpoint folder -> the checkpoint folder to resume."""
    p = Path(path)
    for candidate in (p / "checkpoints" / "last", p / "last", p):
        if (candidate / "model.safetensors").is_file() and (candidate / "state.pt").is_file():
            return candidate.resolve()
    raise ReslabError(f"no checkpoint to resume under {path} (expected RUN/checkpoints/last/model.safetensors and state.pt)")


def load_state(ckpt_dir: Path) -> dict[str, Any]:
    try:
        return torch.load(ckpt_dir / "state.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - corrupt, truncated or hostile file
        raise ReslabError(f"cannot read training state {ckpt_dir / 'state.pt'}: {str(e).splitlines()[0][:200]}") from None


def rng_state() -> dict[str, Any]:
    s: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
