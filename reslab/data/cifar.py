"""CIFAR-10/100 in the official python format, read without unpickling arbitrary objects,
and downloaded (when there is a network) with checksum verification and safe extraction."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import torch

from ..errors import ReslabError
from .archives import safe_extract

SOURCES = {
    "cifar10": dict(url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                    md5="c58f30108f718f92721af3b95e74349a", folder="cifar-10-batches-py",
                    train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"],
                    meta="batches.meta", label_key="labels", names_key="label_names"),
    "cifar100": dict(url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                     md5="eb9058c3a382ffc7106e4002c42a8d85", folder="cifar-100-python",
                     train=["train"], test=["test"], meta="meta", label_key="fine_labels", names_key="fine_label_names"),
}


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; anything else is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load_batch(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArraysOnly(io.BytesIO(f.read()), encoding="latin1").load()
    except FileNotFoundError:
        raise ReslabError(f"missing CIFAR batch file {path}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise ReslabError(f"{path} is not a CIFAR batch (corrupt, or holds objects other than arrays): {e}") from None
    if not isinstance(obj, dict):
        raise ReslabError(f"{path} is not a CIFAR batch (found {type(obj).__name__})")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def find_cifar_root(path: Path, name: str) -> Path | None:
    folder = SOURCES[name]["folder"]
    for candidate in (path, path / folder):
        if (candidate / SOURCES[name]["meta"]).is_file():
            return candidate
    return None


def load_cifar(path: str | os.PathLike, name: str = "cifar10", split: str = "train") -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(uint8 images N x 3 x 32 x 32, int64 labels, class names) of one split."""
    src = SOURCES[name]
    root = find_cifar_root(Path(path), name)
    if root is None:
        raise ReslabError(f"no {name} data under {path}: put the official '{src['folder']}' folder there "
                          f"(extracted from {src['url']}), or pass --download when a network is available")
    meta = _load_batch(root / src["meta"])
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[src["names_key"]]]
    images, labels = [], []
    for fname in src[split]:
        batch = _load_batch(root / fname)
        try:
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            labels.append(np.asarray(batch[src["label_key"]], dtype=np.int64))
        except (KeyError, ValueError) as e:
            raise ReslabError(f"{root / fname}: unexpected CIFAR batch layout ({e})") from None
        images.append(data)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)), names


def download_cifar(root: str | os.PathLike, name: str = "cifar10", url: str | None = None,
                   md5: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch and extract the official archive into `root`; verify its md5 first. Returns the data folder."""
    src = SOURCES[name]
    root = Path(root)
    existing = find_cifar_root(root, name)
    if existing is not None:
        return existing
    root.mkdir(parents=True, exist_ok=True)
    archive = root / Path(url or src["url"]).name
    tmp = archive.with_suffix(".part")
    try:
        with urllib.request.urlopen(url or src["url"], timeout=timeout) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ReslabError(f"cannot download {name} from {url or src['url']} ({e}); without a network, put the "
                          f"official '{src['folder']}' folder under {root}") from None
    digest = hashlib.md5(tmp.read_bytes()).hexdigest()
    if digest != (md5 or src["md5"]):
        tmp.unlink()
        raise ReslabError(f"{name} download is corrupt: md5 {digest}, expected {md5 or src['md5']}")
    os.replace(tmp, archive)
    safe_extract(archive, root)
    archive.unlink()
    found = find_cifar_root(root, name)
    if found is None:
        raise ReslabError(f"the downloaded archive did not contain '{src['folder']}'")
    return found
