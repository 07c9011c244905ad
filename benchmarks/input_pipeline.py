"""Input pipeline throughput, images/s per CPU core, on realistically sized JPEGs.

What the CPU does per training image to feed an accelerator (random-resized crop to 224, flip):
  reference   torchvision-style: Pillow decodes the whole JPEG, crops and resizes it (resize with a
              box), flips, to-tensor and normalise per sample, float batch (written out with Pillow and
              torch: torchvision does not import here)
  stream      reslab from the JPEG files, as its DataLoader workers run: the crop chosen from the header,
              DCT-scaled decode (Pillow's draft scale), the window resampled by torch's uint8 antialiased
              interpolation, uint8 batch (reslab normalises on the training device)
              - with Pillow's decoder (RESLAB_JPEG=pillow), and with simplejpeg (reslab[fast]) if installed
  cache       reslab from its keep-aspect decode-once cache (memory-mapped uint8, shorter side 320)
Each runs in one process with one thread (so images/s = per core), best of --rounds alternating
rounds, on images made from the shared Imagenette copy: upscaled to ~500x375 and ~2000x1500 JPEGs
(quality 90) in a temporary folder, and the shared 224-pixel files themselves.

    python benchmarks/input_pipeline.py [--images 300] [--rounds 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reslab.data import jpeg  # noqa: E402
from reslab.data.crops import rrc_window, sample_crop, sample_rng  # noqa: E402
from reslab.data.whole import build_aspect_cache, crop_resize, decode_crop  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette-224-val.tar"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def make_images(folder: Path, n: int) -> dict[str, list[Path]]:
    """n source images from Imagenette (224 px), and copies upscaled to 500x375 and 2000x1500."""
    from PIL import Image
    src = folder / "224"
    src.mkdir(parents=True)
    if SHARED.exists():
        with tarfile.open(SHARED) as tar:
            members = [m for m in tar if m.isfile() and m.name.lower().endswith(".jpeg")][:n]
            for i, m in enumerate(members):
                (src / f"{i:05d}.jpg").write_bytes(tar.extractfile(m).read())
    else:
        print(f"({SHARED} is absent: using synthetic images)", file=sys.stderr)
        rng = np.random.default_rng(0)
        for i in range(n):
            small = Image.fromarray(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8))
            small.resize((224, 224), Image.BICUBIC).save(src / f"{i:05d}.jpg", quality=90)
    sets = {"224 (shared)": sorted(src.iterdir())}
    for label, (w, h) in (("500x375", (500, 375)), ("2000x1500", (2000, 1500))):
        out = folder / label
        out.mkdir()
        for p in sets["224 (shared)"]:
            with Image.open(p) as img:
                img.convert("RGB").resize((w, h), Image.BICUBIC).save(out / p.name, quality=90)
        sets[label] = sorted(out.iterdir())
    return sets


def reference(paths: list[Path], size: int = 224, batch: int = 32) -> float:
    """torchvision's RandomResizedCrop + flip + ToTensor + Normalize per sample, whole-image decode, collate."""
    from PIL import Image
    t0 = time.perf_counter()
    buf = []
    for i, p in enumerate(paths):
        rng = sample_rng(0, 0, i)
        with Image.open(p) as img:
            img = img.convert("RGB")
            top, left, ch, cw = rrc_window(rng, img.size[1], img.size[0])
            img = img.resize((size, size), Image.BILINEAR, box=(left, top, left + cw, top + ch))
            if rng.random() < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
            buf.append((x - MEAN) / STD)
        if len(buf) == batch:
            torch.stack(buf)
            buf = []
    return len(paths) / (time.perf_counter() - t0)


def stream(paths: list[Path], decoder: str, size: int = 224, batch: int = 32) -> float:
    """reslab's worker: decode_crop per sample (the given JPEG decoder), uint8 batch."""
    os.environ["RESLAB_JPEG"] = decoder
    try:
        t0 = time.perf_counter()
        buf = []
        for i, p in enumerate(paths):
            buf.append(decode_crop(p, lambda h, w, i=i: sample_crop("rrc", 0, 0, i, h, w, size), size))
            if len(buf) == batch:
                torch.stack(buf)
                buf = []
        return len(paths) / (time.perf_counter() - t0)
    finally:
        os.environ.pop("RESLAB_JPEG", None)


def cached(cache, size: int = 224, batch: int = 32) -> float:
    t0 = time.perf_counter()
    buf = []
    for i in range(len(cache)):
        w, h = cache.original_size(i)
        buf.append(crop_resize(cache.image(i), (w, h), sample_crop("rrc", 0, 0, i, h, w, size), size))
        if len(buf) == batch:
            torch.stack(buf)
            buf = []
    return len(cache) / (time.perf_counter() - t0)


def plot(rows: list[dict], path: Path) -> None:
    """Grouped bars: images/s per core of each pipeline, per source size (log scale)."""
    from reslab.utils.plotting import pyplot
    plt = pyplot()
    names = {"reference": "reference (torchvision-style)", "stream": "reslab stream (Pillow)",
             "stream_sj": "reslab stream (simplejpeg)", "cache": "reslab cache"}
    keys = [k for k in names if k in rows[0]]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / len(keys)
    for j, k in enumerate(keys):
        xs = [i + (j - (len(keys) - 1) / 2) * width for i in range(len(rows))]
        bars = ax.bar(xs, [r[k] for r in rows], width, label=names[k])
        for b, r in zip(bars, rows):
            label = f"{r[k]:,.0f}" if k == "reference" else f"{r[k + '_x']:.1f}x"
            ax.annotate(label, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)), [r["images"] for r in rows])
    ax.set_yscale("log")
    ax.set_ylabel("images/s per CPU core")
    ax.set_title(f"224 px random-resized crops, one thread ({platform.processor() or platform.machine()})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--cache-shorter", type=int, default=320)
    p.add_argument("--json", default=None)
    p.add_argument("--png", default=None, help="also draw the table as a bar chart (images/s per core)")
    p.add_argument("--tiny", action="store_true", help="12 images, 1 round: a seconds-long smoke run")
    args = p.parse_args()
    if args.tiny:
        args.images, args.rounds = 12, 1
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = make_images(Path(tmp), args.images)
        for label, paths in sets.items():
            t0 = time.perf_counter()
            cache = build_aspect_cache(paths, args.cache_shorter, Path(tmp) / "cache" / label.split()[0])
            build_s = time.perf_counter() - t0
            pipes = {"reference": lambda: reference(paths), "stream": lambda: stream(paths, "pillow"),
                     "stream_sj": lambda: stream(paths, "simplejpeg"), "cache": lambda: cached(cache)}
            if jpeg.simplejpeg is None:
                del pipes["stream_sj"]
            best = dict.fromkeys(pipes, 0.0)
            for _ in range(args.rounds):
                for k, run in pipes.items():
                    best[k] = max(best[k], run())
            jpeg_mb = sum(q.stat().st_size for q in paths) / 2**20
            row = {"images": label, "n": len(paths), **{k: round(v, 1) for k, v in best.items()},
                   "jpeg_mib": round(jpeg_mb, 1), "cache_mib": round(cache.nbytes / 2**20, 1),
                   "cache_build_s": round(build_s, 1)}
            for k in pipes:
                if k != "reference":
                    row[f"{k}_x"] = round(best[k] / best["reference"], 2)
            rows.append(row)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread per pipeline, "
          f"best of {args.rounds} alternating rounds; images/s per CPU core (x: / reference)")
    sj = "stream_sj" in rows[0]
    print(f"{'images':<13} {'n':>4} {'reference':>10} {'stream':>16} " + (f"{'stream+simplejpeg':>18} " if sj else "")
          + f"{'cache':>16} {'JPEG MiB':>9} {'cache MiB':>9}")
    for r in rows:
        print(f"{r['images']:<13} {r['n']:>4} {r['reference']:>8.1f}/s {r['stream']:>7.1f}/s ({r['stream_x']:.2f}x) "
              + (f"{r['stream_sj']:>8.1f}/s ({r['stream_sj_x']:.2f}x) " if sj else "")
              + f"{r['cache']:>7.1f}/s ({r['cache_x']:.2f}x) {r['jpeg_mib']:>9.1f} {r['cache_mib']:>9.1f}")
    print("stream and cache hand uint8 batches (normalised on the training device); "
          "a 16-core GPU host runs about 14 such workers")
    if args.png:
        plot(rows, Path(args.png))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "cpu_count": os.cpu_count()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
