"""Stage 2: the device computes what the CPU computes (at most 75 s of the default budget, + 10 s for the part in
progress to end): every preset's forward, reslab against torchvision's and timm's resnet50 with the same
weights, compiled vs eager, a train + resume."""
from __future__ import annotations

import copy
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
import reslab
from safetensors.torch import load_file

from . import plan
from .core import Deadline, Stage, captured_logs, deadline, stop_reason, sync
from .data import import_references
from .runs import run_training


# each part ends by its share of the stage's time (cumulative: a part that ends early leaves the rest to the
# next); the compile check runs before the trainings, so that neither the preset sweep nor the train + resume
# runs can eat its time
SHARES = {"presets": 0.3, "torchvision / timm": 0.4, "compiled vs eager": 0.75, "train + resume": 1.0}


def run(ctx, stage: Stage) -> None:
    parts = {"presets": presets, "torchvision / timm": ecosystem, "compiled vs eager": compiled_vs_eager,
             "train + resume": train_resume}
    start, span = time.monotonic(), ctx.stage_until - time.monotonic()
    for name, fn in parts.items():
        until = min(ctx.stage_until, start + SHARES[name] * span)
        if until - time.monotonic() < (1 if ctx.tiny else 5):
            stage.note(f"{name}: skipped, its share of the stage's time ran out")
            continue
        ctx.guarded(stage, name, fn, ctx, stage, until, until=until,
                    slack=plan.SLACK_S["tiny" if ctx.tiny else "correctness"])
    failed = [r for t in stage.tables for r in t.rows if r.get("pass") is False]
    stage.facts["checks failed"] = len(failed)


@contextmanager
def precision(device: torch.device, tf32: bool):
    """TF32 on or off for cuDNN convolutions and matmuls (fp32 inputs), restored afterwards."""
    if device.type != "cuda":
        yield
        return
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@contextmanager
def deterministic(on: bool):
    """cuDNN's deterministic algorithms and torch's deterministic mode, restored afterwards."""
    # warn-only: an op without a deterministic version still runs, and the comparison shows what it costs
    cudnn = torch.backends.cudnn
    old = cudnn.deterministic, cudnn.benchmark, torch.are_deterministic_algorithms_enabled()
    if on:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old[0], old[1]
        torch.use_deterministic_algorithms(old[2])


def rel_err(out: torch.Tensor | list[torch.Tensor], ref: torch.Tensor | list[torch.Tensor]) -> float:
    """||out - ref|| / ||ref|| over a tensor or a list of tensors; NaN (a failure) if either is not finite."""
    # fp32 arithmetic: ample for tolerances >= 1e-5, and exactly 0 for equal tensors
    outs, refs = (out, ref) if isinstance(out, list) else ([out], [ref])
    diff2 = ref2 = out2 = 0.0
    for a, b in zip(outs, refs):
        a, b = a.detach().float(), b.detach().float().to(a.device)
        diff2 += (a - b).norm().item() ** 2
        ref2 += b.norm().item() ** 2
        out2 += a.norm().item() ** 2  # a NaN or inf anywhere makes its norm NaN or inf
    if not all(math.isfinite(v) for v in (diff2, ref2, out2)):
        return float("nan")
    return math.sqrt(diff2) / max(math.sqrt(ref2), 1e-30)


def within(err: float, tol: float) -> bool:
    return math.isfinite(err) and err <= tol


def tame(model: torch.nn.Module) -> torch.nn.Module:
    """Scale the last layer of every residual branch by 1/sqrt(blocks), as Fixup does."""
    # at initialisation the output variance of a residual net doubles with every block: ResNet-1202's
    # 600 blocks would overflow fp32
    blocks = [m for m in model.modules() if hasattr(m, "zero_init_last") and getattr(m, "residual", False)]
    with torch.no_grad():
        for b in blocks:
            before = {n: p.detach().clone() for n, p in b.named_parameters()}
            b.zero_init_last()  # tells which tensor is the branch's last scale
            for n, p in b.named_parameters():
                if not torch.equal(p, before[n]):
                    p.copy_(before[n] / math.sqrt(len(blocks)))
    return model


def presets(ctx, stage: Stage, until: float) -> None:
    dev, sizes = ctx.device, ctx.sizes
    # bf16 is what reslab trains in on a GPU; checked on any device that has it (a CPU emulates it if need be)
    amp = torch.bfloat16 if dev.type == "cpu" or torch.cuda.is_bf16_supported() else None
    names = list(sizes.presets or reslab.list_models())
    cuda = dev.type == "cuda"
    t = stage.table("Every preset: forward on the device vs the CPU in fp32 (eval mode, relative L2 error of logits)",
                    [("preset", "preset"), ("input", "input"), ("fp32", "fp32 (TF32 off)"), ("tf32", "TF32"),
                     ("bf16", "bf16 autocast + channels_last"), ("pass", "pass")])
    stage.facts["tolerances"] = plan.TOLERANCE_WHY
    for i, name in enumerate(names):
        if time.monotonic() > until:
            stage.note(f"presets: {i} of {len(names)} checked before their share of the stage ran out")
            break
        torch.manual_seed(i)
        model = tame(_on_device(name, dev)).eval()
        size = 32 if getattr(getattr(model, "cfg", None), "stem", "") == "cifar" else sizes.imagenet_input
        x = torch.randn(sizes.fwd_batch, 3, size, size)
        with torch.no_grad():
            ref = copy.deepcopy(model).cpu()(x)
            xd = x.to(dev)
            with precision(dev, tf32=False):
                errs = {"fp32": rel_err(model(xd), ref)}
            if cuda:
                with precision(dev, tf32=True):
                    errs["tf32"] = rel_err(model(xd), ref)
            if amp is not None:
                model.to(memory_format=torch.channels_last)
                with torch.autocast(dev.type, dtype=amp):
                    errs["bf16"] = rel_err(model(xd.to(memory_format=torch.channels_last)), ref)
        ok = all(within(e, plan.TOLERANCE[k]) for k, e in errs.items())
        t.rows.append({"preset": name, "input": f"{sizes.fwd_batch}x3x{size}x{size}", **errs, "pass": ok})
        del model
    if not cuda:
        stage.note("presets: the device is the CPU, so fp32 is compared with itself (0) and TF32 does not apply")
    if amp is None:
        stage.note("presets: this GPU has no bf16, so reslab trains in fp32 here and no bf16 column is checked")
    elif ctx.speed.amp_dtype != amp:
        stage.note("presets: reslab's auto precision here is not bf16; the bf16 column checks the GPU's path anyway")


def _on_device(name: str, dev: torch.device) -> torch.nn.Module:
    """The preset built on the device itself: initialising a 100M-parameter net there takes milliseconds."""
    try:
        with dev:
            return reslab.create_model(name)
    except Exception:  # noqa: BLE001 - a constructor that insists on the CPU: build there, then move
        return reslab.create_model(name).to(dev)


def ecosystem(ctx, stage: Stage, until: float) -> None:
    tv, timm = import_references()
    if tv is None and timm is None:
        stage.note("torchvision / timm: neither is installed, check skipped (pip install torchvision timm)")
        return
    dev, size, name = ctx.device, ctx.sizes.ecosystem_input, ctx.sizes.ecosystem_model
    torch.manual_seed(0)
    base = getattr(tv.models, name)() if tv is not None else timm.create_model(name)
    with torch.no_grad():  # non-trivial BN statistics and affine terms, so that a swapped BN tensor shows
        for m in base.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.0), m.bias.normal_(0, 0.1)
    state = base.state_dict()
    nets = {"reslab": reslab.create_model(name)}
    if tv is not None:
        nets["torchvision"] = getattr(tv.models, name)()
    if timm is not None:
        nets["timm"] = timm.create_model(name)
    for net in nets.values():
        net.load_state_dict(state)  # strict: the same tensor names, shapes and count
        net.to(dev)
    x = torch.randn(2, 3, size, size, device=dev)
    y = torch.randint(0, 1000, (2,), device=dev)
    outs = {}
    with precision(dev, tf32=False):
        for lib, net in nets.items():
            with torch.no_grad():
                logits = net.eval()(x)
            F.cross_entropy(net.train()(x), y).backward()
            outs[lib] = (logits, [p.grad for _, p in sorted(net.named_parameters())])
    t = stage.table(f"reslab {name} vs the ecosystem's, same weights, fp32 (TF32 off), input 2x3x{size}x{size}",
                    [("reference", "reference"), ("logits", "eval logits rel. error"),
                     ("grads", "training gradients rel. error"), ("tol", "tolerance"), ("pass", "pass")])
    for lib in [n for n in nets if n != "reslab"]:
        e1, e2 = rel_err(outs["reslab"][0], outs[lib][0]), rel_err(outs["reslab"][1], outs[lib][1])
        t.rows.append({"reference": f"{lib} {getattr(tv if lib == 'torchvision' else timm, '__version__', '')}",
                       "logits": e1, "grads": e2, "tol": plan.ECOSYSTEM_TOL,
                       "pass": within(e1, plan.ECOSYSTEM_TOL) and within(e2, 10 * plan.ECOSYSTEM_TOL)})
    if tv is None or timm is None:
        stage.note(f"torchvision / timm: {'torchvision' if tv is None else 'timm'} is not installed, no row for it")


def train_resume(ctx, stage: Stage, until: float) -> None:
    """N steps against N/2 steps + resume to N, with deterministic and with default kernels."""
    # with cuDNN's default (non-deterministic) kernels two identical runs already differ: a second N-step run
    # measures by how much
    cuda = ctx.device.type == "cuda"
    n, half = ctx.sizes.resume_steps, ctx.sizes.resume_steps // 2
    modes = [("deterministic kernels", True), ("default kernels", False)] if cuda else [("CPU", False)]
    t = stage.table(f"{ctx.sizes.resume_model} on the bundled digits, {n} steps: uninterrupted vs {half} + resume "
                    f"(max abs difference of the final weights)",
                    [("mode", "kernels"), ("rerun", "run vs rerun"), ("resume", "run vs resumed"),
                     ("loss", "final loss run / resumed"), ("pass", "pass")])
    for label, det in modes:
        tag = label.split()[0]
        with deterministic(det):
            a = _digits_run(ctx, f"a-{tag}", n, until)
            b1 = _digits_run(ctx, f"b-{tag}", half, until)
            b = _digits_run(ctx, f"b-{tag}", n, until, resume=b1.dir)
            a2 = _digits_run(ctx, f"a2-{tag}", n, until) if cuda and not det else None
        rerun = _max_diff(a.weights(), a2.weights()) if a2 is not None else float("nan")
        resumed = _max_diff(a.weights(), b.weights())
        exact = det or not cuda
        ok = resumed == 0.0 if exact else math.isfinite(resumed) and resumed <= max(10 * rerun, 1e-6)
        losses = [w.get("loss") for w in (a.train_windows()[-1:] + b.train_windows()[-1:])]
        t.rows.append({"mode": label, "rerun": rerun if a2 is not None else "-", "resume": resumed,
                       "loss": " / ".join(f"{v:.5f}" for v in losses if v is not None), "pass": ok})
    stage.note("train + resume: identical weights expected on CPU and with deterministic kernels; with cuDNN's "
               "default kernels (atomics in the backward pass) the resumed run may differ from the uninterrupted "
               "one by no more than 10x what a plain rerun differs")


def _digits_run(ctx, name: str, steps: int, until: float, resume: Path | None = None):
    over = {"model": ctx.sizes.resume_model, "data.source": "digits", "batch_size": 64 if not ctx.tiny else 16,
            "schedule.steps": steps, "run.eval_every": steps, "run.log_every": max(1, steps // 5),
            "run.compile": "off", **ctx.run_defaults(f"resume-{name}")}
    out = run_training("cifar-paper", over, until, resume=resume)  # lr constant (0.1) for the first 32k steps
    if out.status != "done":  # the part's time ran out (or the proof is stopping): a cut, not a failure
        raise Deadline(f"run {name} {out.status} at its deadline")
    return out


def _max_diff(p: Path | None, q: Path | None) -> float:
    if p is None or q is None:
        return float("nan")
    a, b = load_file(str(p)), load_file(str(q))
    if a.keys() != b.keys():
        return float("nan")
    return max(((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point()), default=0.0)


def compiled_vs_eager(ctx, stage: Stage, until: float) -> None:
    dev, cuda = ctx.device, ctx.device.type == "cuda"
    backend = plan.compile_backend(dev, ctx.tiny)
    torch.manual_seed(0)
    eager = reslab.create_model(ctx.sizes.compile_model).to(dev)
    x = torch.randn(32 if not ctx.tiny else 4, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (len(x),), device=dev)
    t = stage.table(f"{ctx.sizes.compile_model}: torch.compile vs eager, fp32 (TF32 off), relative error",
                    [("mode", "compiled with"), ("compile_s", "compile s"), ("logits", "train-mode logits"),
                     ("grads", "gradients"), ("eval", "eval logits"), ("breaks", "graph breaks"), ("pass", "pass")])
    modes = [(f"{backend} (mode default)", {"backend": backend})]
    if cuda:  # a second compilation, only when the part's time still allows it
        modes.append(("inductor reduce-overhead (CUDA graphs; 3rd call = a replay)", {"mode": "reduce-overhead"}))
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    with precision(dev, tf32=False):
        ref = _step(eager, x, y)
        for label, kw in modes:
            left, need = until - time.monotonic(), (20 if "mode" in kw else 5) if not ctx.tiny else 1
            if left < need:
                stage.note(f"compiled vs eager: {label} skipped, {left:.0f} s of this part left (needs ~{need} s)"
                           + ("; stage 3's CIFAR runs still train through CUDA graphs" if "mode" in kw else ""))
                continue
            breaks0 = sum(counters["graph_break"].values())
            net = torch.compile(copy.deepcopy(eager), **kw)
            t0 = time.perf_counter()
            with captured_logs() as cudagraph_msgs:
                try:
                    with deadline(until):
                        got = _step(net, x, y)
                        sync(dev)
                        compile_s = time.perf_counter() - t0
                        for _ in range(2 if "mode" in kw else 0):  # CUDA graphs: warm-up, record, then replay
                            got = _step(net, x, y)
                except Deadline:
                    if stop_reason():
                        raise
                    stage.note(f"compiled vs eager: {label} cut, its compilation outlasted this part's time")
                    continue
            for m in cudagraph_msgs[:5]:
                stage.note(f"compiled vs eager: {label}: torch's cudagraphs log: {m}")
            errs = [rel_err(g, r) for g, r in zip(got, ref)]
            t.rows.append({"mode": label, "compile_s": compile_s, "logits": errs[0], "grads": errs[1], "eval": errs[2],
                           "breaks": sum(counters["graph_break"].values()) - breaks0,
                           "pass": all(within(e, plan.COMPILE_TOL) for e in errs)})
    if backend != "inductor":
        stage.note("compiled vs eager: on a CPU in --tiny mode the capture runs with backend aot_eager "
                   "(inductor's C++ code generation takes ~30 s here); the device run uses inductor")
    if cuda and os.environ.get("TORCHINDUCTOR_FX_GRAPH_CACHE") == "0":
        stage.note("inductor's FX graph cache is off: later compilations start from nothing")


def _step(net, x, y) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """(train-mode logits, gradients, eval-mode logits) of one forward/backward."""
    # BatchNorm's running statistics are put back, so that repeated calls (CUDA graphs need three) see one model
    saved = [b.detach().clone() for b in net.buffers()]
    for p in net.parameters():
        p.grad = None
    net.train()
    logits = net(x)
    F.cross_entropy(logits, y).backward()
    grads = [p.grad.clone() for p in net.parameters()]
    with torch.no_grad():
        for b, s in zip(net.buffers(), saved):
            b.copy_(s)
        net.eval()
        ev = net(x)
    return logits.detach().clone(), grads, ev.clone()
