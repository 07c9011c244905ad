"""reslab on a GPU in one command: a staged proof inside a time budget.

Stages, in order (each writes its results into --out as soon as it ends, and after every part: gpu_proof.json +
gpu_proof.md, rewritten atomically, so a later failure or a kill loses nothing). Time limits for the default
--budget-s 540; a stage with a later one selected keeps its limit, the last selected stage gets all that is left:
  1 env          GPU, memory, torch / CUDA / cuDNN versions, bf16, cudnn.benchmark, CPU cores, /dev/shm (seconds;
                 at most 20 s)
  2 correctness  every preset's forward on the device vs the CPU in fp32 (fp32, TF32, bf16 tolerances);
                 reslab's resnet50 vs torchvision's and timm's with the same weights; torch.compile vs eager
                 (inductor; CUDA graphs too when the part's time allows); a train + resume on the device (at most
                 75 s, + 10 s for the part in progress to end)
  3 throughput   CIFAR ResNet-20 eager (decodes the data); ResNet-50, batch 256 at 224: training img/s, eager
                 variants first (reslab eager, torchvision's resnet50 with AMP + channels_last), then reslab's
                 defaults (bf16 + channels_last + torch.compile); CIFAR ResNet-20 through CUDA graphs; ResNet-50
                 inference; ResNet-56 eager vs CUDA graphs; ResNet-20 with reslab's auto compile, as time allows
                 (at most 200 s, + 20 s for the part in progress to end)
  4 accuracy     the cifar-paper recipe (64k iterations) for ResNet-20 on the CIFAR-10 JPEG archive: wall time
                 and test error (CPU-2: 12.91 % in 3.1 h); ResNet-56 and plain-56 if their full recipe fits;
                 scaled down (or stopped) to fit the budget, and said so; weights copied into --out (what stages
                 1-3 leave, less stage 5's 50 s: ~190 s)
  5 e2e          ResNet-50, eager, on JPEG files with --data.input whole and DataLoader workers, one epoch: img/s
                 vs the synthetic figure of reslab eager (the last 50 s)
Overruns of stages 1-3 come out of stage 4's time. A SIGTERM (the device tool's limit when less device time is
left than the call's timeout) ends the proof like the deadline: what is measured is kept and written.

Data (only the repository's working tree travels to the GPU machine, 64 MiB at most; ../shared and, maybe,
.git do not):
  mkdir -p gpu-data && cp ../shared/data/cifar10-jpeg.tar.gz gpu-data/   # 19.6 MB; /gpu-data/ is in .gitignore
  git rev-parse HEAD > gpu-data/COMMIT                                   # stage 1 reports it when .git is absent
  and name the folder in the device tool's carry list: carry: ["gpu-data"]. The script reads --cifar, default
  gpu-data/cifar10-jpeg.tar.gz; a full run on CUDA without it stops at once (exit 2) unless --cifar none.
  Stage 5 generates 16,000 ImageNet-sized JPEG files (500x375) on the machine unless told otherwise. Imagenette:
  the 106 MB train tar does not fit in one call (split -b 50M, carry the parts in successive calls while the
  machine is warm, cat them together outside the repository there, pass --imagenette PATH); the 44 MB val tar
  fits beside the CIFAR archive only just (63.5 of 64 MiB with today's tree): copied as
  gpu-data/imagenette-224-val.tar it is found by itself and its val/ split serves as the training set.

On the GPU machine, through the device tool (one call; with the machine's start ~11 of its 15 minutes):
  command: set -o pipefail; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_proof.py --out $OUT --work /tmp/proof 2>&1
           | tee $OUT/gpu_proof.log
  carry: ["gpu-data"]   timeout_s: 600
  (its python3 has torch, torchvision and timm; the script puts the repository on sys.path: nothing to install)
A rerun of stage 4 alone on the still-warm machine (same --work: it plans with the speeds stage 3 saved there):
  python3 benchmarks/gpu_proof.py --out $OUT --work /tmp/proof --stages accuracy --tta-steps N --budget-s B
Without a GPU (what tests/benchmarks/test_gpu_proof.py runs, ~25 s):
  python benchmarks/gpu_proof.py --device cpu --tiny --out /tmp/proof
"""
from __future__ import annotations

import time

T0 = time.monotonic()  # the budget counts from here: torch's import is part of it

import os  # noqa: E402

# lets stage 2's deterministic mode use cuBLAS; must be set before CUDA starts
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import argparse  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch  # noqa: E402
from reslab.training import build_config  # noqa: E402
from reslab.training.device import resolve_speed  # noqa: E402

from gpuproof import accuracy, core, correctness, e2e, env, plan, throughput  # noqa: E402
from gpuproof.context import Context  # noqa: E402
from gpuproof.core import Budget, Deadline, Results, Stage, fmt  # noqa: E402
from gpuproof.data import cifar_problem, cifar_source  # noqa: E402

TITLES = {"env": "1. Environment", "correctness": "2. Correctness", "throughput": "3. Throughput",
          "accuracy": "4. Time to accuracy", "e2e": "5. ImageNet-style input end to end"}
RUNNERS = {"env": env.run, "correctness": correctness.run, "throughput": throughput.run, "accuracy": accuracy.run,
           "e2e": e2e.run}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="results: gpu_proof.json, gpu_proof.md, tta-*.safetensors")
    p.add_argument("--work", type=Path, default=None,
                   help="run folders, decode cache, generated images (default: runs/gpu-proof, ignored by git; "
                        "on the device machine /tmp/..., so that only the results land in $OUT)")
    p.add_argument("--budget-s", type=float, default=540.0,
                   help="seconds for the whole proof, from the process's start; every stage fits inside, shortening "
                        "or skipping what does not fit and saying so (default 540: a 600 s device call)")
    p.add_argument("--stages", default="all", help="comma-separated names or numbers: env,correctness,throughput,"
                                                   "accuracy,e2e or 1-5 (default all)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cuda, cuda:N or cpu (default: cuda when available)")
    p.add_argument("--tiny", action="store_true", help="tiny nets, few steps, generated data: every stage in seconds")
    p.add_argument("--cifar", default=None, help="the CIFAR-10 JPEG archive (default gpu-data/cifar10-jpeg.tar.gz; "
                                                 "--tiny uses a generated folder unless this is given)")
    p.add_argument("--imagenette", default=None, help="stage 5's images: a tar or folder with train/ or val/ "
                                                      "(default gpu-data/imagenette-224-val.tar if present, else "
                                                      "generated JPEGs; 'none' forces generated)")
    p.add_argument("--tta-steps", type=int, default=0,
                   help="stage 4: ResNet-20 trains this many iterations (lr steps at 50 %% / 75 %%) instead of as many "
                        "as the budget allows at the measured speed; run alone (--stages accuracy) without it, stage 4 "
                        "plans with the speeds an earlier call saved in --work, else measures one first (~30 s)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        stages = plan.parse_stages(args.stages)
    except ValueError as e:
        print(f"gpu_proof: error: {e}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_proof: error: --device cuda but no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    problem = missing_data(args, stages)
    if problem:
        print(f"gpu_proof: error: {problem}", file=sys.stderr)
        return 2
    budget = Budget(args.budget_s, T0)
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    speed = resolve_speed(build_config("cifar-paper", {"run.device": str(device)}).run)
    # every stage compiles several networks: keep Dynamo from falling back to eager after its default 8 recompiles
    for name in ("cache_size_limit", "recompile_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)
    work = (args.work or Path(__file__).resolve().parents[1] / "runs" / "gpu-proof").resolve()
    work.mkdir(parents=True, exist_ok=True)
    sizes = plan.TINY if args.tiny else plan.FULL
    ctx = Context(device, speed, sizes, args.tiny, args.out.resolve(), work, budget, time.strftime("%Y%m%d-%H%M%S"),
                  imagenette=args.imagenette, tta_steps=args.tta_steps or sizes.tta_steps)
    meta = {"command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "device": str(device), "budget_s": args.budget_s,
            "tiny": args.tiny, "stages": ",".join(stages)}
    results = ctx.results = Results(ctx.out, meta)
    caps = plan.stage_caps(args.budget_s)
    signal.signal(signal.SIGTERM, core.on_sigterm)  # like the deadline: results kept, nothing new started
    print(f"reslab GPU proof: device {device}, budget {args.budget_s:.0f} s ({budget.left():.0f} s left after "
          f"imports), stages {', '.join(stages)}, out {ctx.out}", flush=True)
    try:
        for key in stages:
            _run_stage(key, stages, ctx, results, caps, args)
    except (KeyboardInterrupt, Deadline):  # Ctrl-C between parts, or a signal in between: what finished is written
        if results.stages:
            results.stages[-1].status = "interrupted"
        results.write()
        print("\ninterrupted: the results so far are in " + str(ctx.out), file=sys.stderr)
        return core.stop_code() or 130
    print(f"\n== summary ({budget.elapsed():.0f} s of {args.budget_s:.0f}) ==")
    for s in results.stages:
        print(f"{s.title:<40} {s.status:<8} {s.seconds:6.0f} s  {_headline(s)}")
    print(f"results: {ctx.out / 'gpu_proof.md'} and gpu_proof.json", flush=True)
    if core.stop_reason():
        print(f"stopped early: {core.stop_reason()}", file=sys.stderr)
        return core.stop_code()
    return 0


def missing_data(args: argparse.Namespace, stages: list[str]) -> str | None:
    """Why a full CUDA run cannot start (its CIFAR archive is missing), else None; --cifar none runs without."""
    # stages 3 and 4 would only skip their CIFAR parts with a note: in the one device call that would cost the
    # time-to-accuracy figure, so the run stops before it starts. An explicit --cifar PATH must exist anywhere
    if not {"throughput", "accuracy"} & set(stages):
        return None
    if args.cifar not in (None, "none") or (not args.tiny and args.device.startswith("cuda")):
        return cifar_problem(args.cifar)
    return None


def _run_stage(key: str, stages: list[str], ctx: Context, results: Results, caps: dict[str, float],
               args: argparse.Namespace) -> None:
    """One stage under its deadline; its results are written the moment it ends."""
    stage = Stage(key, TITLES[key])
    results.add(stage)
    t0 = time.monotonic()
    ctx.stage_until = plan.stage_until(key, stages, caps, t0, ctx.budget.end(), args.tiny)
    left = ctx.stage_until - t0
    print(f"\n== {stage.title} ({max(left, 0):.0f} s available) ==", flush=True)
    if core.stop_reason():
        stage.status = "skipped"
        stage.note(f"skipped: the proof is stopping ({core.stop_reason()})")
    elif left < (1 if args.tiny or key == "env" else 10):
        stage.status = "skipped"
        stage.note(f"skipped: {max(left, 0):.0f} s of the budget left for it")
    else:
        if key in ("throughput", "accuracy") and not ctx.cifar_what:
            ctx.cifar, ctx.cifar_what = cifar_source(args.cifar, args.tiny, ctx.work)
        # the stage's own guard ends a little after its parts' (each has the same slack): a part cut at its
        # guard is noted by the part, not by the stage
        slack = plan.SLACK_S["tiny" if args.tiny else "default"] + 3
        ok = ctx.guarded(stage, stage.title, RUNNERS[key], ctx, stage, slack=slack)
        if stage.status == "running":
            stage.status = "done" if ok and not stage.problems else "partial"
    stage.seconds = time.monotonic() - t0
    results.write()
    print(stage.markdown(), flush=True)


def _headline(stage: Stage) -> str:
    rows = {t.title: t.rows for t in stage.tables}
    first = next((r[0] for r in rows.values() if r), None)
    if stage.key == "env":
        return str(stage.facts.get("GPU", stage.facts.get("CPU", "")))
    if stage.key == "correctness":
        checked = [r for t in stage.tables for r in t.rows if "pass" in r]
        return f"{sum(r['pass'] is True for r in checked)} of {len(checked)} checks pass"
    if first is None:
        return ""
    if stage.key == "throughput":
        big = next((r[0] for title, r in rows.items() if r and "training, batch" in title), None)
        if big:
            return f"{big['variant']}: {fmt(big['img_s'])} img/s training, {big['ratio']} of torchvision"
        return f"{first['model']} {first['mode']}: {fmt(first['img_s'])} img/s training" if "mode" in first else ""
    if stage.key == "accuracy":
        tta = next((r[0] for title, r in rows.items() if r and title.startswith(accuracy.TITLE)), None)
        if tta is None:
            return ""
        return (f"{tta['model']}: {fmt(tta['test_err'])} % test error, {tta['steps']} iterations, "
                f"{fmt(tta['wall'])} s")
    if stage.key == "e2e":
        return f"{fmt(first['img_s'])} img/s from JPEG files, {first['ratio']} of the synthetic figure"
    return ""


if __name__ == "__main__":
    sys.exit(main())
