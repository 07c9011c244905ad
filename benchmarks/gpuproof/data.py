"""Data for the proof: the CIFAR-10 archive (or a small generated stand-in), an ImageNet-style folder
(Imagenette's val tar, or generated photos-sized JPEGs), and the optional torchvision / timm references."""
from __future__ import annotations

import os
import shutil
import sys
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "gpu-data"  # ignored by .gitignore: carried to the device machine with `carry: ["gpu-data"]`
CIFAR_ARCHIVE = DATA_DIR / "cifar10-jpeg.tar.gz"
IMAGENETTE_ARCHIVE = DATA_DIR / "imagenette-224-val.tar"


def synthetic_image(rng: np.random.Generator, label: int, w: int, h: int) -> np.ndarray:
    """A blocky random picture with a class tint and fine noise: compresses and decodes roughly like a photo."""
    coarse = rng.integers(0, 256, (-(-h // 32), -(-w // 32), 3), dtype=np.uint8)
    img = coarse.repeat(32, 0).repeat(32, 1)[:h, :w].astype(np.int16)
    tint = np.array([(37 * label) % 256, (91 * label) % 256, (173 * label) % 256], np.int16)
    img = (3 * img + 2 * tint) // 5 + rng.integers(-12, 13, img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_images(args: tuple[Path, int, int, int, int, int, str]) -> None:
    from PIL import Image
    folder, label, first, count, w, h, ext = args
    rng = np.random.default_rng(1000 * label + first)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + count):
        Image.fromarray(synthetic_image(rng, label, w, h)).save(folder / f"{i:06d}.{ext}", quality=90)


def image_folder(root: Path, splits: dict[str, int], size: tuple[int, int], classes: int = 10, ext: str = "png",
                 workers: int = 1, unique: int = 0) -> Path:
    """ROOT/<split>/<class>/NNNNNN.ext, `splits[split]` per class, `unique` of them encoded, the rest hard links."""
    # decoding, which is what is measured, costs the same for a link; encoding them all would take a minute
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    jobs = []
    for split, per_class in splits.items():
        made = min(per_class, unique or per_class)
        chunk = max(1, made * classes // max(1, workers) or 1)
        for c in range(classes):
            for first in range(0, made, chunk):
                jobs.append((root / split / f"class{c}", c, first, min(chunk, made - first), *size, ext))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_images, jobs))
    else:
        for job in jobs:
            _write_images(job)
    for split, per_class in splits.items():
        made = min(per_class, unique or per_class)
        for c in range(classes):
            folder = root / split / f"class{c}"
            for i in range(made, per_class):
                os.link(folder / f"{i % made:06d}.{ext}", folder / f"{i:06d}.{ext}")
    done.write_text("ok\n")
    return root


def cifar_problem(path: str | None) -> str | None:
    """Why the CIFAR archive a full run needs is missing (None: present, or --cifar none asked for no CIFAR runs)."""
    if path == "none":
        return None
    if path:
        return None if Path(path).exists() else f"--cifar {path}: not found"
    if CIFAR_ARCHIVE.exists():
        return None
    return (f"no CIFAR-10 archive at {CIFAR_ARCHIVE.relative_to(ROOT)}: copy it there "
            f"(cp ../shared/data/cifar10-jpeg.tar.gz gpu-data/) and carry gpu-data, or pass --cifar none")


def cifar_source(path: str | None, tiny: bool, work: Path) -> tuple[str | None, str]:
    """(--data for reslab, what it is). Tiny runs use a generated 32x32 folder unless --cifar names a file."""
    if path == "none":
        return None, "--cifar none: no CIFAR runs asked for"
    if path:
        p = Path(path)
        return (str(p), f"{p.name} (--cifar)") if p.exists() else (None, f"--cifar {p}: not found")
    if not tiny:
        if CIFAR_ARCHIVE.exists():
            return str(CIFAR_ARCHIVE), f"CIFAR-10 JPEG archive {CIFAR_ARCHIVE.relative_to(ROOT)}"
        return None, f"no CIFAR-10 archive at {CIFAR_ARCHIVE.relative_to(ROOT)} (see --help)"
    root = image_folder(work / "tiny-cifar", {"train": 8, "test": 4}, (32, 32))
    return str(root), "a generated 32x32 folder (10 classes, 80 train / 40 test images)"


def imagenet_style_source(path: str | None, sizes, tiny: bool, work: Path) -> tuple[str, str]:
    """(--data, description) of a train/<class>/*.jpg folder: Imagenette's (val as train) or generated JPEGs."""
    # Imagenette's val split serves as a training set: this stage measures speed, not accuracy
    if path == "none":
        chosen = None
    elif path:
        chosen = Path(path)
    else:
        chosen = IMAGENETTE_ARCHIVE if IMAGENETTE_ARCHIVE.exists() and not tiny else None
    missing = f"{chosen} not found; " if chosen is not None and not chosen.exists() else ""
    if chosen is not None and chosen.is_file():
        root = work / "imagenette"
        if not (root / ".complete").exists():
            shutil.rmtree(root, ignore_errors=True)
            with tarfile.open(chosen) as tar:
                tar.extractall(root, filter="data")
            _val_as_train(root)
            (root / ".complete").write_text("ok\n")
        return str(root), f"{chosen.name} ({count_files(root / 'train')} images, val split used for training)"
    if chosen is not None and chosen.is_dir():
        if (chosen / "train").is_dir():
            return str(chosen), f"{chosen} ({count_files(chosen / 'train')} training images)"
        root = work / "imagenette-link"
        root.mkdir(parents=True, exist_ok=True)
        if not (root / "train").exists():
            (root / "train").symlink_to((chosen / "val").resolve())
        return str(root), f"{chosen}/val ({count_files(root / 'train')} images) used for training"
    w, h = sizes.e2e_image_size
    per_class = max(1, sizes.e2e_images // 10)
    root = image_folder(work / f"synthetic-{w}x{h}", {"train": per_class}, (w, h), ext="jpg",
                        workers=1 if tiny else min(16, len(os.sched_getaffinity(0))),
                        unique=max(1, per_class // 10))
    mean_kb = _mean_kib(root / "train")
    return str(root), (f"{missing}{10 * per_class} generated {w}x{h} JPEG files (quality 90, mean {mean_kb:.0f} KiB; "
                       f"{10 * max(1, per_class // 10)} distinct images, hard-linked)")


def _val_as_train(root: Path) -> None:
    """Imagenette's val tar holds val/<wnid>/...: whole-image training reads train/<class>/."""
    for base in [root, *root.iterdir()]:
        if (base / "val").is_dir() and not (base / "train").exists():
            (base / "val").rename(root / "train")
            return


def count_files(folder: Path | str) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def image_size_summary(folder: Path | str, sample: int = 40) -> str:
    """'500x375', or the spread of widths and heights over a sample of the folder's images (headers only)."""
    from PIL import Image
    sizes = []
    for root, _, files in os.walk(folder):
        for name in sorted(files)[:4]:
            try:
                with Image.open(os.path.join(root, name)) as im:
                    sizes.append(im.size)
            except OSError:
                continue
        if len(sizes) >= sample:
            break
    if not sizes:
        return "unknown"
    if len(set(sizes)) == 1:
        return f"{sizes[0][0]}x{sizes[0][1]}"
    ws, hs = sorted(w for w, _ in sizes), sorted(h for _, h in sizes)
    return (f"{ws[0]}-{ws[-1]} x {hs[0]}-{hs[-1]} (median {ws[len(ws) // 2]}x{hs[len(hs) // 2]}, "
            f"{len(sizes)} sampled)")


def _mean_kib(folder: Path) -> float:
    sizes = [f.stat().st_size for f in folder.rglob("*.jpg")]
    return sum(sizes) / len(sizes) / 1024 if sizes else 0.0


def import_references():
    """(torchvision, timm), either None when absent."""
    # a CUDA build of torchvision on a CPU-only torch fails to register its fake kernels: only then is the
    # import retried with torch.library.register_fake neutralised (no torchvision operator is used here),
    # so a machine where the plain import works (a GPU machine) is left untouched
    import torch
    mods = []
    for name in ("torchvision", "timm"):
        try:
            mods.append(__import__(name))
        except ImportError:
            mods.append(None)
        except RuntimeError:
            for m in [m for m in sys.modules if m.split(".")[0] in ("torchvision", "timm")]:
                del sys.modules[m]
            orig = torch.library.register_fake
            torch.library.register_fake = lambda *a, **k: (lambda f: f)
            try:
                mods.append(__import__(name))
            except (ImportError, RuntimeError):
                mods.append(None)
            finally:
                torch.library.register_fake = orig
    return mods[0], mods[1]
