"""An ImageNet-shaped rehearsal: the first real ImageNet job, in miniature, before anyone pays for one.

From the shared Imagenette copy (or, without it, generated JPEGs of ImageNet-like sizes) it lays the
same images out as ImageNet is distributed, then runs the whole user path on each layout through the
`reslab` command itself, and checks what a silent defect would break:

  layouts   folders   train/<wnid>/*.JPEG + val/<wnid>/*.JPEG (torchvision's ImageFolder)
            kaggle    ILSVRC/Data/CLS-LOC/{train/<wnid>, val/*.JPEG flat} + LOC_val_solution.csv + LOC_synset_mapping.txt
            devkit    train/<wnid> + flat val/ + ILSVRC2012_validation_ground_truth.txt + data/ILSVRC2012_synsets.txt
            shards    train-*.tar written class by class (uneven), val-000000.tar, classes.txt
  path      train (whole images) -> resume -> eval -> predict -> features -> export -> finetune
  checks    every training sample once per epoch; class-mixed batches; the evaluation transform equals
            torchvision's rules to the pixel; eval's peak memory; identical results across the layouts
            that hold the same images in the same order.

    python tools/imagenet_rehearsal.py --out /tmp/rehearsal [--per-class 20] [--val-per-class 10]

Writes OUT/rehearsal.md and OUT/rehearsal.json; exits 1 if a check fails.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
LAYOUTS = ("folders", "kaggle", "devkit", "shards")


# ----------------------------------------------------------------------------------------------- source images
def source_images(per_class: int, val_per_class: int, seed: int = 0) -> tuple[list[str], dict, dict]:
    """(wnids, {wnid: [JPEG bytes]} for train, the same for val): Imagenette's own files when ../shared has
    them, else generated photos-like JPEGs of ImageNet's typical sizes."""
    train_tar, val_tar = SHARED / "imagenette-224-train.tar", SHARED / "imagenette-224-val.tar"
    if train_tar.exists() and val_tar.exists():
        return _from_tars(train_tar, val_tar, per_class, val_per_class)
    rng = np.random.default_rng(seed)
    wnids = ["n01440764", "n02102040", "n02979186", "n03000684"]
    sizes = [(500, 375), (375, 500), (333, 500), (640, 427)]

    def jpeg(k):
        w, h = sizes[k % len(sizes)]
        base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # smooth, photo-like
        img = Image.fromarray(base).resize((w, h), Image.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
        return buf.getvalue()
    train = {w: [jpeg(i) for i in range(per_class)] for w in wnids}
    val = {w: [jpeg(i + 7) for i in range(val_per_class)] for w in wnids}
    return wnids, train, val


def _from_tars(train_tar: Path, val_tar: Path, per_class: int, val_per_class: int):
    def take(path: Path, n: int) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {}
        with tarfile.open(path) as tar:
            for m in sorted(tar.getmembers(), key=lambda m: m.name):
                parts = Path(m.name).parts
                if m.isfile() and len(parts) >= 3 and len(out.setdefault(parts[-2], [])) < n:
                    out[parts[-2]].append(tar.extractfile(m).read())
        return out
    train, val = take(train_tar, per_class), take(val_tar, val_per_class)
    return sorted(train), train, val


# ----------------------------------------------------------------------------------------------- layouts
def write_layouts(out: Path, wnids: list[str], train: dict, val: dict) -> dict[str, str]:
    """Every layout of the same images; returns {layout: --data value}."""
    from reslab.data.shards import write_shard
    val_items = [(w, b) for w in wnids for b in val[w]]  # ILSVRC2012_val_00000001... in this order
    names = [f"ILSVRC2012_val_{i + 1:08d}" for i in range(len(val_items))]
    data = {}
    for layout in ("folders", "kaggle", "devkit"):
        root = out / layout
        base = root / "ILSVRC" / "Data" / "CLS-LOC" if layout == "kaggle" else root
        for w in wnids:
            (base / "train" / w).mkdir(parents=True, exist_ok=True)
            for i, b in enumerate(train[w]):
                (base / "train" / w / f"{w}_{i}.JPEG").write_bytes(b)
        for name, (w, b) in zip(names, val_items):
            target = base / "val" / (f"{w}/{name}.JPEG" if layout == "folders" else f"{name}.JPEG")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b)
        data[layout] = str(base)
    kaggle = out / "kaggle"
    (kaggle / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "".join(
        f"{n},{w} 10 20 200 300\n" for n, (w, _) in zip(names, val_items)))
    (kaggle / "LOC_synset_mapping.txt").write_text("".join(f"{w} class {w}\n" for w in wnids))
    devkit = out / "devkit"
    ids = {w: i + 1 for i, w in enumerate(wnids)}  # ILSVRC2012_ID of each class
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{ids[w]}\n" for w, _ in val_items))
    (devkit / "data").mkdir(exist_ok=True)
    (devkit / "data" / "ILSVRC2012_synsets.txt").write_text("".join(f"{i} {w}\n" for w, i in ids.items()))
    shards = out / "shards"
    shards.mkdir(exist_ok=True)
    samples = [(w, b) for w in wnids for b in train[w]]  # class by class, as ImageNet's shards often are
    cuts = [0, len(samples) * 2 // 5, len(samples) * 4 // 5, len(samples)]  # three uneven shards
    for s in range(3):
        write_shard(shards / f"train-{s:06d}.tar", [(f"{k:06d}", wnids.index(w), b)
                                                    for k, (w, b) in enumerate(samples[cuts[s]:cuts[s + 1]], cuts[s])])
    write_shard(shards / "val-000000.tar", [(n, wnids.index(w), b) for n, (w, b) in zip(names, val_items)])
    (shards / "classes.txt").write_text("\n".join(wnids) + "\n")
    data["shards"] = str(shards)
    return data


# ----------------------------------------------------------------------------------------------- the path
def reslab(*args, env: dict) -> tuple[subprocess.CompletedProcess, float, float]:
    """`reslab ARGS` as a user runs it: (process, seconds, peak memory of the command in MiB)."""
    code = ("import resource, sys; from reslab.cli.main import main; rc = main(sys.argv[1:]); "
            "print('__peak_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=1800)
    peak = next((int(line.split()[1]) / 1024 for line in proc.stderr.splitlines() if line.startswith("__peak_kib")), 0)
    if proc.returncode != 0:
        raise RuntimeError(f"reslab {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return proc, time.perf_counter() - t, peak


def user_path(layout: str, data: str, out: Path, steps: int, env: dict) -> dict:
    """train -> resume -> eval -> predict -> features -> export -> finetune on one layout."""
    tiny = ["--model", "resnet18", "--model-arg", "widths=[16,16,32,32]", "--model-arg", "stem_width=16"]
    common = [*tiny, "--data", data, "--data.input", "whole", "--data.crop", "64", "--batch-size", "8",
              "--run.progress", "false", "--out", out / "runs", "--seed", "0", "--data.workers", "2"]
    times, peaks = {}, {}
    _, times["train"], peaks["train"] = reslab("train", *common, "--steps", steps, "--run.eval_every", steps,
                                               "--name", f"{layout}", env=env)
    half = steps // 2  # the same run in two segments, resumed
    reslab("train", *common, "--steps", half, "--run.eval_every", half, "--name", f"{layout}-cut", env=env)
    _, times["resume"], _ = reslab("train", "--resume", out / "runs" / f"{layout}-cut", "--steps", steps, env=env)
    run = out / "runs" / layout
    proc, times["eval"], peaks["eval"] = reslab("eval", "--weights", run, "--json", "--out", out / f"eval-{layout}",
                                                env=env)
    metrics = json.loads(proc.stdout)
    val_files = sorted(p for p in Path(data).rglob("*.JPEG") if "val" in p.parts)[:4] if layout != "shards" else []
    if val_files:
        reslab("predict", *val_files, "--weights", run, "--json", env=env)
        reslab("features", *val_files, "--weights", run, "--out", out / f"features-{layout}.npy", env=env)
    reslab("export", "--weights", run, "--format", "torchscript", "--data", data, "--verify-images", "8",
           "--out", out / f"{layout}.pt", env=env)
    reslab("finetune", "--weights", run, "--data", data, "--data.input", "whole", "--data.crop", "64",
           "--batch-size", "8", "--steps", "4", "--run.progress", "false", "--out", out / "runs",
           "--name", f"{layout}-ft", env=env)
    from safetensors.torch import load_file
    a = load_file(str(run / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(out / "runs" / f"{layout}-cut" / "checkpoints" / "last" / "model.safetensors"))
    return {"layout": layout, "val_images": metrics["images"], "val_top1_err": metrics["top1_err"],
            "val_loss": metrics["loss"], "split": metrics["split"], "resume_exact": all(torch.equal(a[k], b[k]) for k in a),
            "times_s": {k: round(v, 1) for k, v in times.items()}, "peak_mib": {k: round(v) for k, v in peaks.items()},
            "weights": {k: v.clone() for k, v in a.items()}}


# ----------------------------------------------------------------------------------------------- checks
def data_checks(data: dict[str, str], wnids: list[str], cache: Path) -> dict:
    from reslab.data.catalog import locate
    from reslab.data.loader import split_order
    from reslab.data.preprocessing import InputConfig, eval_image
    out = {}
    for layout, spec in data.items():
        cat = locate(spec, str(cache))
        train = cat.splits["train"]
        seen = split_order(train, 0, 0).tolist()
        labels = torch.tensor(train.labels)
        batch = 8
        mixed = [len(set(labels[seen[i:i + batch]].tolist())) for i in range(0, len(seen) - batch + 1, batch)]
        out[layout] = {"classes_ok": list(cat.classes) == list(wnids), "train": len(train), "val": len(cat.splits["val"]),
                       "once_per_epoch": sorted(seen) == list(range(len(train))),
                       "min_classes_per_batch": min(mixed) if mixed else 0}
    # the evaluation transform, against torchvision's rules written again here
    cfg = InputConfig(64, 73, "bilinear")
    cat = locate(data["folders"], str(cache))
    worst = 0
    for ref in cat.splits["val"].refs[:8]:
        img = Image.open(ref).convert("RGB")
        w, h = img.size
        nw, nh = (73, int(73 * h / w)) if w <= h else (int(73 * w / h), 73)
        img = img.resize((nw, nh), Image.BILINEAR)
        top, left = int(round((nh - 64) / 2.0)), int(round((nw - 64) / 2.0))
        expected = torch.from_numpy(np.asarray(img.crop((left, top, left + 64, top + 64))).copy()).permute(2, 0, 1)
        worst = max(worst, int((eval_image(ref, cfg).int() - expected.int()).abs().max()))
    out["eval_transform_max_diff"] = worst
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the layouts, runs and the report")
    ap.add_argument("--per-class", type=int, default=20, help="training images per class")
    ap.add_argument("--val-per-class", type=int, default=10, help="validation images per class")
    ap.add_argument("--steps", type=int, default=24, help="training steps per run (batch 8)")
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help="which layouts to run the user path on")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RESLAB_CACHE": str(out / "cache"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    wnids, train, val = source_images(args.per_class, args.val_per_class)
    data = write_layouts(out / "data", wnids, train, val)
    checks = data_checks(data, wnids, out / "cache")
    results = [user_path(layout, data[layout], out, args.steps, env) for layout in args.layouts.split(",")]
    by = {r["layout"]: r for r in results}
    same_files = [name for name in ("folders", "kaggle", "devkit") if name in by]
    failures = []
    for layout, c in ((k, v) for k, v in checks.items() if isinstance(v, dict)):
        if not (c["classes_ok"] and c["once_per_epoch"]):
            failures.append(f"{layout}: classes or once-per-epoch")
        if c["min_classes_per_batch"] < min(len(wnids), 3):
            failures.append(f"{layout}: a training batch of 8 holds {c['min_classes_per_batch']} classes")
    if checks["eval_transform_max_diff"]:
        failures.append(f"evaluation transform differs from torchvision's rules by {checks['eval_transform_max_diff']}")
    for r in results:
        if not r["resume_exact"]:
            failures.append(f"{r['layout']}: the resumed run differs from the uninterrupted one")
        if r["peak_mib"]["eval"] > r["peak_mib"]["train"] + 64:
            failures.append(f"{r['layout']}: eval peaked at {r['peak_mib']['eval']} MiB, above training's")
    for name in same_files[1:]:  # the same images in the same order: the same weights and the same figures
        a, b = by[same_files[0]], by[name]
        if not all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"]):
            failures.append(f"{name}: trained weights differ from {same_files[0]}'s")
        if (a["val_top1_err"], a["val_loss"]) != (b["val_top1_err"], b["val_loss"]):
            failures.append(f"{name}: evaluation differs from {same_files[0]}'s")
    report = {"images": {"train": sum(map(len, train.values())), "val": sum(map(len, val.values())),
                         "classes": len(wnids), "source": "Imagenette" if (SHARED / "imagenette-224-val.tar").exists()
                         else "generated"},
              "checks": checks, "runs": [{k: v for k, v in r.items() if k != "weights"} for r in results],
              "failures": failures, "wall_s": round(time.perf_counter() - t0, 1)}
    (out / "rehearsal.json").write_text(json.dumps(report, indent=1))
    lines = [f"# ImageNet-shaped rehearsal ({report['images']['source']}: {report['images']['train']} train / "
             f"{report['images']['val']} val images, {len(wnids)} classes; {report['wall_s']} s)", "",
             "| layout | train | val | once/epoch | min classes/batch of 8 | val split | val top-1 err | resume exact | "
             "eval peak MiB | train peak MiB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = checks[r["layout"]]
        lines.append(f"| {r['layout']} | {c['train']} | {c['val']} | {c['once_per_epoch']} | {c['min_classes_per_batch']} | "
                     f"{r['split']} | {100 * r['val_top1_err']:.2f} % | {r['resume_exact']} | {r['peak_mib']['eval']} | "
                     f"{r['peak_mib']['train']} |")
    lines += ["", f"evaluation transform vs torchvision's rules: max difference {checks['eval_transform_max_diff']} "
              f"grey levels", "", "failures: " + ("none" if not failures else "; ".join(failures))]
    (out / "rehearsal.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
