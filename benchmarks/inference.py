"""Inference speed of every deployment path, as ratios to eager fp32 PyTorch measured in the same run:
batch-1 latency (median) and batch-32 throughput, plus top-1 on real images when trained weights are given.

paths: eager fp32 (reference) | folded BN + channels_last | bf16 autocast (CPUs with native bf16,
       or CUDA) | torch.compile | ONNX Runtime fp32 | ONNX Runtime int8 (static, calibrated on real images)

    python benchmarks/inference.py                                     # resnet18 + resnet50 @224, random weights
    python benchmarks/inference.py --models resnet18 --weights RUN --data ../shared/data/imagenette-224-val.tar \\
        --calib-data ../shared/data/imagenette-224-train.tar           # + accuracy of each path
    python benchmarks/inference.py --tiny                              # seconds; what CI runs
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reslab import create_model  # noqa: E402
from reslab.export import export_model, fold_batchnorm, load_exported  # noqa: E402
from reslab.export.quantize import quantize_onnx  # noqa: E402
from reslab.utils.device import cpu_has_bf16  # noqa: E402
from reslab.utils.table import format_table  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PATHS = ("eager fp32", "folded+channels_last", "bf16 autocast", "torch.compile", "onnxruntime fp32", "onnxruntime int8")


def build_paths(model: torch.nn.Module, size: int, calib: torch.Tensor, workdir: Path, wanted: list[str],
                threads: int) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    model = model.eval()
    folded, _ = fold_batchnorm(model)
    folded_cl = folded.to(memory_format=torch.channels_last)
    out: dict[str, Callable] = {"eager fp32": model}

    def cl(fn):
        return lambda x: fn(x.contiguous(memory_format=torch.channels_last))

    if "folded+channels_last" in wanted:
        out["folded+channels_last"] = cl(folded_cl)
    if "bf16 autocast" in wanted and cpu_has_bf16():
        def bf16(x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return folded_cl(x.contiguous(memory_format=torch.channels_last)).float()
        out["bf16 autocast"] = bf16
    if "torch.compile" in wanted:
        out["torch.compile"] = cl(torch.compile(folded_cl))
    if any(p.startswith("onnxruntime") for p in wanted):
        onnx = export_model(folded, torch.zeros(2, 3, size, size), "onnx", workdir / "model.onnx")
        if "onnxruntime fp32" in wanted:
            out["onnxruntime fp32"] = load_exported(onnx, "onnx", threads)
        if "onnxruntime int8" in wanted:
            q = quantize_onnx(onnx, workdir / "model.int8.onnx", calib)
            out["onnxruntime int8"] = load_exported(q, "onnx", threads)
    return {k: out[k] for k in PATHS if k in out and k in wanted}


@torch.inference_mode()
def latency_ms(fn, x: torch.Tensor, iters: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


@torch.inference_mode()
def top1(fn, x: torch.Tensor, y: torch.Tensor, batch: int = 50) -> float:
    correct = sum(int((fn(x[i:i + batch]).float().argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return 100.0 * correct / len(x)


def real_inputs(spec: str | None, n: int, split: str, preprocess) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(preprocessed float images, labels) from a data spec, or None."""
    if not spec:
        return None
    from reslab.data.pipeline import Pipeline
    from reslab.data.sources import prepared_catalog, sample_split
    cat = prepared_catalog(spec)
    name = "train" if split == "calib" and "train" in cat.splits else (cat.evaluation_split() or "train")
    # calibration: n random images; evaluation: all of them (n = 0) or a random n
    _, s = sample_split(spec, name, preprocess, n, seed=0)
    return Pipeline(preprocess, "none").eval_prepare(s.images), s.labels  # as evaluation prepares them


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet18,resnet50")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=30, help="batch-1 timing repetitions (median)")
    ap.add_argument("--batch-iters", type=int, default=5, help="batch-32 timing repetitions (median)")
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--weights", default=None, help="trained checkpoint (reslab run) for the first model: adds top-1")
    ap.add_argument("--data", default=None, help="labelled real images for top-1 (e.g. imagenette-224-val.tar)")
    ap.add_argument("--calib-data", default=None, help="real images for int8 calibration (default: --data's train "
                                                       "split, else shared Imagenette train)")
    ap.add_argument("--calib-images", type=int, default=256)
    ap.add_argument("--eval-images", type=int, default=0, help="0: all of --data")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--plot", default=None, help="write a PNG bar chart of the speed-ups here")
    ap.add_argument("--tiny", action="store_true", help="resnet18 @64, few iterations (CI)")
    args = ap.parse_args()
    if args.tiny:
        args.models, args.size, args.iters, args.batch_iters, args.batch, args.calib_images = "resnet18", 64, 3, 1, 4, 8
    threads = torch.get_num_threads()
    wanted = [p.strip() for p in args.paths.split(",")]
    bad = [p for p in wanted if p not in PATHS]
    if bad:
        ap.error(f"unknown paths {bad}; choose from {', '.join(PATHS)}")
    rows, results = [], []
    print(f"# {torch.__version__}, {threads} threads, {os.cpu_count()} CPUs; input {args.size}x{args.size}", flush=True)
    for i, name in enumerate(args.models.split(",")):
        torch.manual_seed(0)
        trained = args.weights if i == 0 else None
        if trained:
            from reslab.inference import load_inference_model
            im = load_inference_model(trained, image_size=args.size, crop=args.size)
            model, pre = im.model, im.preprocess
        else:
            from reslab.data.preprocessing import InputConfig
            model, pre = create_model(name).eval(), InputConfig(args.size, args.size)
        calib_spec = args.calib_data or args.data or (str(SHARED / "imagenette-224-train.tar")
                                                      if (SHARED / "imagenette-224-train.tar").exists() else None)
        calib = real_inputs(calib_spec, args.calib_images, "calib", pre)
        calib_x = calib[0] if calib else torch.randn(args.calib_images, 3, args.size, args.size)
        evalset = real_inputs(args.data, args.eval_images, "eval", pre) if trained else None
        with tempfile.TemporaryDirectory() as tmp:
            paths = build_paths(model, args.size, calib_x, Path(tmp), wanted, threads)
            x1 = calib_x[:1].contiguous()
            xb = calib_x[:args.batch].contiguous() if len(calib_x) >= args.batch else torch.randn(args.batch, 3, args.size, args.size)
            ref1 = refb = None
            for pname, fn in paths.items():
                t1 = latency_ms(fn, x1, args.iters)
                tb = latency_ms(fn, xb, args.batch_iters, warmup=1)
                ref1, refb = (t1, tb) if ref1 is None else (ref1, refb)
                rec = {"model": name, "path": pname, "b1_ms": t1, "b1_speedup": ref1 / t1,
                       f"b{args.batch}_img_s": args.batch / tb * 1000, f"b{args.batch}_speedup": refb / tb,
                       "calibration": "real images" if calib else "random"}
                if evalset is not None:
                    rec["top1"] = top1(fn, *evalset)
                    rec["eval_images"] = len(evalset[1])
                results.append(rec)
                rows.append({"model": name, "path": pname, "b1": f"{t1:.1f}", "s1": f"{ref1 / t1:.2f}x",
                             "bn": f"{args.batch / tb * 1000:.1f}", "sn": f"{refb / tb:.2f}x",
                             "top1": f"{rec['top1']:.2f}%" if "top1" in rec else ""})
                print(f"  {name} {pname}: {t1:.1f} ms, {args.batch / tb * 1000:.1f} img/s", file=sys.stderr, flush=True)
    cols = [("model", "model"), ("path", "path"), ("b1", "batch-1 ms"), ("s1", "speed-up"),
            ("bn", f"batch-{args.batch} img/s"), ("sn", "speed-up"), ("top1", "top-1")]
    print(format_table(rows, cols, right=("b1", "s1", "bn", "sn", "top1")))
    if args.json:
        Path(args.json).write_text(json.dumps({"torch": torch.__version__, "threads": threads, "size": args.size,
                                               "results": results}, indent=1))
    if args.plot:
        plot(results, args.batch, args.plot)
    return 0


def plot(results: list[dict], batch: int, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(r["model"] for r in results))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, key, title in ((axes[0], "b1_speedup", "batch-1 latency"), (axes[1], f"b{batch}_speedup", f"batch-{batch} throughput")):
        paths = list(dict.fromkeys(r["path"] for r in results))
        w = 0.8 / len(models)
        for j, m in enumerate(models):
            vals = [next((r[key] for r in results if r["model"] == m and r["path"] == p), 0) for p in paths]
            ax.barh([k + j * w for k in range(len(paths))], vals, height=w, label=m)
        ax.set_yticks([k + w * (len(models) - 1) / 2 for k in range(len(paths))], paths)
        ax.axvline(1, color="k", lw=0.8)
        ax.set_title(f"{title}: speed-up over eager fp32")
        ax.set_xlabel("x faster")
    axes[0].invert_yaxis()
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
