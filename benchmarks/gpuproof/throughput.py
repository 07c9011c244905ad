"""Stage 3: images per second (about two minutes). ResNet-50 on synthetic batches (training and inference)
against torchvision's resnet50 in the same process; CIFAR ResNet-20/56 through reslab's own training loop
and on-device data pipeline, eager against CUDA graphs. Compilation is timed apart from the steps."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
import reslab

from . import plan
from .core import Deadline, Stage, deadline, median, sync, timed
from .data import import_references
from .runs import run_training, steady_speed

COMPILE_EST_S = {"big_train": 90.0, "big_infer": 50.0, "cifar": 60.0}  # skip a compiled case with less time left (CUDA)


def run(ctx, stage: Stage) -> None:
    s = ctx.sizes
    first = s.cifar_models[0]
    # CIFAR first: its CUDA-graph figure decides how stage 4 trains, and its first run decodes the data stage 4 needs
    parts = [(f"CIFAR {first}", cifar, first, ("off", "reduce-overhead")),
             (f"{s.big_model} training", big, "train", None), (f"{s.big_model} inference", big, "infer", None)]
    for model in s.cifar_models[1:]:
        parts.append((f"CIFAR {model}", cifar, model, ("off", "reduce-overhead")))
    parts.append((f"CIFAR {first} auto", cifar, first, ("auto",)))
    for name, fn, what, modes in parts:
        if ctx.stage_until - time.monotonic() < (1 if ctx.tiny else 10):
            stage.note(f"{name}: skipped, the stage's time ran out")
            continue
        ctx.guarded(stage, name, fn, ctx, stage, what, modes)
    stage.facts["anchor"] = plan.ANCHOR


def _compile_fits(ctx, key: str) -> bool:
    return ctx.tiny or ctx.device.type != "cuda" or ctx.stage_until - time.monotonic() > COMPILE_EST_S[key]


def big(ctx, stage: Stage, what: str, _modes) -> None:
    """ResNet-50 on random batches on the device, every variant built here and timed in alternation."""
    # alternation, rep by rep: clock or thermal drift falls on all variants alike
    s, dev = ctx.sizes, ctx.device
    train = what == "train"
    variants = plan.big_variants(ctx.speed)
    tv, _ = import_references()
    if tv is None:
        variants = [v for v in variants if v.source != "torchvision"]
        stage.note("torchvision is not installed: no torchvision reference, no ratio")
    if any(v.compile_mode for v in variants) and not _compile_fits(ctx, f"big_{what}"):
        variants = [v for v in variants if not v.compile_mode]
        stage.note(f"{s.big_model} {what}: compiled variant skipped, under {COMPILE_EST_S[f'big_{what}']:.0f} s left")
    x = torch.randn(s.big_batch, 3, s.big_input, s.big_input, device=dev)
    y = torch.randint(0, 1000, (s.big_batch,), device=dev)
    torch._dynamo.reset()
    steps, first, peak = {}, {}, {}
    for v in sorted(variants, key=lambda v: v.compile_mode is not None):  # eager first: a slow compile costs itself
        torch.manual_seed(0)
        net = reslab.create_model(s.big_model) if v.source == "reslab" else getattr(tv.models, s.big_model)()
        net = net.to(dev)
        xv = x
        if v.channels_last:
            net, xv = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        step = _train_step(net, v, xv, y) if train else _infer_step(net, v, xv)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        try:  # leave the stage time to time what is built (~15 s on a GPU)
            with deadline(ctx.stage_until - (15 if not ctx.tiny else 1)):
                first[v.label] = timed(step, 1, dev)  # compiles, if it compiles; cuDNN's first calls
                timed(step, s.big_warmup, dev)
        except Deadline:
            stage.note(f"{s.big_model} {what}: {v.label} dropped, its compilation outlasted the stage's time")
            variants = [u for u in variants if u is not v]
            continue
        peak[v.label] = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else "-"
        steps[v.label] = step
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(s.big_reps):
        for label, step in steps.items():
            times[label].append(timed(step, s.big_steps, dev))
    kind = "training" if train else "inference"
    t = stage.table(f"{s.big_model} {kind}, batch {s.big_batch} at {s.big_input}x{s.big_input}, synthetic data "
                    f"(median of {s.big_reps} x {s.big_steps} steps)",
                    [("variant", "variant"), ("switches", "precision / layout / compile"), ("first_s", "first step s"),
                     ("img_s", "img/s"), ("ratio", "vs torchvision"), ("mem", "peak GiB")])
    ref = next((v.label for v in variants if v.source == "torchvision"), None)
    rate = {k: s.big_steps * s.big_batch / median(v) for k, v in times.items()}
    for v in variants:
        t.rows.append({"variant": v.label, "switches": f"{plan.dtype_name(v.amp)} / "
                       f"{'channels_last' if v.channels_last else 'NCHW'} / {v.compile_mode or 'eager'}",
                       "first_s": first[v.label], "img_s": rate[v.label],
                       "ratio": f"{rate[v.label] / rate[ref]:.2f}x" if ref else "-", "mem": peak[v.label]})
    ctx.measured[f"big_{what}"] = {k: rate[k] for k in rate}
    if train and dev.type == "cuda":
        best = max(rate.values())
        stage.note(f"anchor: {plan.ANCHOR}; reslab's best here: {best:,.0f} img/s, {best / plan.ANCHOR_IMG_S:.2f}x")


def _train_step(net, v: plan.Variant, x, y):
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    fwd = torch.compile(net, mode=v.compile_mode) if v.compile_mode else net
    net.train()

    def step() -> None:
        with torch.autocast(x.device.type, dtype=v.amp, enabled=v.amp is not None):
            loss = F.cross_entropy(fwd(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _infer_step(net, v: plan.Variant, x):
    fwd = torch.compile(net, mode=v.compile_mode) if v.compile_mode else net
    net.eval()

    def step() -> None:
        with torch.inference_mode(), torch.autocast(x.device.type, dtype=v.amp, enabled=v.amp is not None):
            fwd(x)
    return step


def cifar(ctx, stage: Stage, model: str, modes: tuple[str, ...]) -> None:
    """Short cifar-paper runs of reslab.training.train per run.compile; img/s from the loop's logged windows."""
    # reslab's own data path: the uint8 set on the device, augmented there; the windows end in a host sync
    if ctx.cifar is None:
        stage.note(f"CIFAR runs skipped: {ctx.cifar_what}")
        return
    from torch._dynamo.utils import counters
    s, dev = ctx.sizes, ctx.device
    t = _cifar_table(stage, ctx)
    wanted = {m for _, m in plan.cifar_variants(dev)}
    for mode in modes:
        if mode not in wanted:
            stage.note(f"CIFAR {model} {mode}: skipped (CUDA graphs need CUDA)" if mode == "reduce-overhead"
                       else f"CIFAR {model} {mode}: skipped on {dev.type}")
            continue
        if mode != "off" and not _compile_fits(ctx, "cifar"):
            stage.note(f"CIFAR {model} {mode}: skipped, under {COMPILE_EST_S['cifar']:.0f} s left")
            continue
        torch._dynamo.reset()  # a fresh compilation cache per run (and no recompile limit reached across runs)
        skips0 = counters["inductor"]["cudagraph_skips"]
        over = {"model": model, "data.source": ctx.cifar, "batch_size": s.cifar_batch, "schedule.steps": s.cifar_steps,
                "run.eval_every": s.cifar_steps, "run.log_every": s.cifar_log, "run.compile": mode,
                **ctx.run_defaults(f"speed-{model}-{mode}")}
        out = run_training("cifar-paper", over, ctx.stage_until)
        sp = steady_speed(out.train_windows(), s.cifar_batch)
        ctx.measured.setdefault("cifar", {}).setdefault(model, {})[mode] = sp
        eager = ctx.measured["cifar"][model].get("off", {}).get("img_s")
        t.rows.append({"model": model, "mode": dict((m, lbl) for lbl, m in plan.cifar_variants(dev)).get(mode, mode),
                       "img_s": sp.get("img_s", float("nan")), "ratio": f"{sp['img_s'] / eager:.2f}x"
                       if eager and sp.get("img_s") else "-", "compile_s": sp.get("compile_s", float("nan")),
                       "wall": out.wall_s, "skips": counters["inductor"]["cudagraph_skips"] - skips0,
                       "status": out.status})
        if out.status != "done":
            stage.problems += 1
            stage.note(f"CIFAR {model} {mode}: {out.status} at the stage's deadline after {out.steps()} steps"
                       + ("" if sp else f", before its first logged window ({s.cifar_log} steps): no speed"))
        sync(dev)


def _cifar_table(stage: Stage, ctx):
    title = (f"CIFAR training through reslab.training.train, batch {ctx.sizes.cifar_batch}, {ctx.sizes.cifar_steps} "
             f"steps of the cifar-paper recipe on {ctx.cifar_what}")
    for t in stage.tables:
        if t.title == title:
            return t
    return stage.table(title, [("model", "model"), ("mode", "run.compile"), ("img_s", "img/s (steady)"),
                               ("ratio", "vs eager"), ("compile_s", "compile + warm-up s"), ("wall", "run wall s"),
                               ("skips", "CUDA-graph skips"), ("status", "run")])
