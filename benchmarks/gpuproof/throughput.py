"""Stage 3: images per second (at most 200 s of the default budget, + 20 s for the part in progress to end).
ResNet-50 on synthetic batches (training and inference) against torchvision's resnet50 in the same process;
CIFAR ResNet-20/56 through reslab's own training loop and on-device data pipeline, eager against CUDA graphs.
Compilation is timed apart from the steps."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
import reslab

from . import plan
from .core import Deadline, Stage, captured_logs, deadline, median, stop_reason, sync, timed
from .data import import_references
from .runs import run_training, steady_speed

COMPILE_EST_S = {"big_train": 90.0, "big_infer": 50.0, "cifar": 60.0}  # skip a compiled case with less time left (CUDA)


def parts(ctx) -> list[tuple[str, object, str, tuple[str, ...] | None]]:
    """(name, function, what, run.compile modes) in the order they run."""
    # the headline (ResNet-50 training against torchvision) second, right after the CIFAR eager run that decodes
    # the data; then the CUDA-graph figure stage 4 chooses its mode with; the rest as time allows
    s = ctx.sizes
    cuda_modes = {m for _, m in plan.cifar_variants(ctx.device)}
    first = s.cifar_models[0]
    out = [(f"CIFAR {first} eager", cifar, first, ("off",)), (f"{s.big_model} training", big, "train", None)]
    if "reduce-overhead" in cuda_modes:
        out.append((f"CIFAR {first} CUDA graphs", cifar, first, ("reduce-overhead",)))
    out.append((f"{s.big_model} inference", big, "infer", None))
    for model in s.cifar_models[1:]:
        out.append((f"CIFAR {model}", cifar, model, tuple(m for m in ("off", "reduce-overhead") if m in cuda_modes)))
    if "auto" in cuda_modes:
        out.append((f"CIFAR {first} auto", cifar, first, ("auto",)))
    return out


def run(ctx, stage: Stage) -> None:
    if ctx.device.type != "cuda":
        stage.note("CIFAR runs: CUDA graphs (reduce-overhead) and reslab's auto compile need CUDA: eager only here")
    for name, fn, what, modes in parts(ctx):
        if ctx.stage_until - time.monotonic() < (1 if ctx.tiny else 10):
            stage.note(f"{name}: skipped, the stage's time ran out")
            continue
        ctx.guarded(stage, name, fn, ctx, stage, what, modes)
    stage.facts["anchor"] = plan.ANCHOR


def _compile_fits(ctx, key: str) -> bool:
    return ctx.tiny or ctx.device.type != "cuda" or ctx.stage_until - time.monotonic() > COMPILE_EST_S[key]


def big(ctx, stage: Stage, what: str, _modes) -> None:
    """ResNet-50 on random batches on the device: the eager variants (reslab's, torchvision's) built, warmed and
    timed first, so that a compilation that overruns cannot lose them; then the compiled one, timed in
    alternation with them."""
    # alternation, rep by rep: clock or thermal drift falls on all variants alike
    s, dev = ctx.sizes, ctx.device
    train = what == "train"
    variants = plan.big_variants(ctx.speed)
    tv, _ = import_references()
    if tv is None:
        variants = [v for v in variants if v.source != "torchvision"]
        stage.note("torchvision is not installed: no torchvision reference, no ratio")
    kind = "training" if train else "inference"
    t = stage.table(f"{s.big_model} {kind}, batch {s.big_batch} at {s.big_input}x{s.big_input}, synthetic data "
                    f"(median of {s.big_reps}+ x {s.big_steps} steps)",
                    [("variant", "variant"), ("switches", "precision / layout / compile"), ("first_s", "first step s"),
                     ("img_s", "img/s"), ("ratio", "vs torchvision"), ("mem", "peak GiB")])
    x = torch.randn(s.big_batch, 3, s.big_input, s.big_input, device=dev)
    y = torch.randint(0, 1000, (s.big_batch,), device=dev)
    steps, first, peak, times = {}, {}, {}, {}

    def prepare(v: plan.Variant) -> bool:
        """Build, first step (compiles, if it compiles; cuDNN's benchmark), warm-up; False if cut."""
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
                first[v.label] = timed(step, 1, dev)
                timed(step, s.big_warmup, dev)
        except Deadline:
            if stop_reason():
                raise
            why = "compilation" if v.compile_mode else "first steps"
            stage.note(f"{s.big_model} {what}: {v.label} dropped, its {why} outlasted the stage's time")
            return False
        peak[v.label] = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else "-"
        steps[v.label], times[v.label] = step, []
        return True

    def time_all() -> None:
        try:
            for _ in range(s.big_reps):
                for label, step in steps.items():
                    times[label].append(timed(step, s.big_steps, dev))
        finally:  # a SIGTERM or the guard's cut keeps the repetitions done
            _big_rows(ctx, stage, t, train, [v for v in variants if times.get(v.label)], times, first, peak)

    old_benchmark = torch.backends.cudnn.benchmark
    # fixed shapes: cuDNN times its candidate kernels on the first calls and keeps the fastest, as reslab's
    # training does on CUDA (reslab.training.setup) and torchvision's reference scripts do
    torch.backends.cudnn.benchmark = True
    stage.facts["cudnn.benchmark in the ResNet-50 timings"] = True
    torch._dynamo.reset()
    try:
        eager = [v for v in variants if not v.compile_mode]
        if sum(prepare(v) for v in eager):
            time_all()  # written now: a compilation that overruns cannot lose these figures
            ctx.save()
        for v in [v for v in variants if v.compile_mode]:
            if not _compile_fits(ctx, f"big_{what}"):  # judged after the eager timings, with the time they left
                stage.note(f"{s.big_model} {what}: {v.label} skipped, under {COMPILE_EST_S[f'big_{what}']:.0f} s "
                           f"of the stage left for its compilation")
                continue
            if prepare(v):
                time_all()  # the eager variants again, alternating with the compiled one: medians over all reps
    finally:
        torch.backends.cudnn.benchmark = old_benchmark


def _big_rows(ctx, stage: Stage, t, train: bool, variants: list[plan.Variant], times: dict[str, list[float]],
              first: dict[str, float], peak: dict[str, object]) -> None:
    """The table's rows (every variant timed so far, in big_variants' order), ctx.measured, and reslab's best
    against the anchor."""
    s = ctx.sizes
    ref = next((v.label for v in variants if v.source == "torchvision"), None)
    rate = {k: s.big_steps * s.big_batch / median(v) for k, v in times.items() if v}
    t.rows[:] = [{"variant": v.label, "switches": f"{plan.dtype_name(v.amp)} / "
                  f"{'channels_last' if v.channels_last else 'NCHW'} / {v.compile_mode or 'eager'}",
                  "first_s": first[v.label], "img_s": rate[v.label],
                  "ratio": f"{rate[v.label] / rate[ref]:.2f}x" if ref else "-", "mem": peak[v.label]} for v in variants]
    ctx.measured[f"big_{'train' if train else 'infer'}"] = dict(rate)
    reslab_eager = next((v.label for v in variants if v.source == "reslab" and not v.compile_mode), None)
    if train and reslab_eager:  # stage 5 trains eager: its like-for-like synthetic figure
        ctx.measured["big_train_eager"] = {"label": reslab_eager, "img_s": rate[reslab_eager]}
    mine = [v.label for v in variants if v.source == "reslab"]  # reslab's best, never torchvision's
    if train and mine and ctx.device.type == "cuda":
        best = max(mine, key=rate.get)
        stage.facts["reslab's best ResNet-50 training vs the anchor"] = (
            f"{best}: {rate[best]:,.0f} img/s, {rate[best] / plan.ANCHOR_IMG_S:.2f}x the anchor's "
            f"{plan.ANCHOR_IMG_S:,.0f}")


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


def cifar(ctx, stage: Stage, model: str, modes: tuple[str, ...], until: float | None = None) -> None:
    """Short cifar-paper runs of reslab.training.train per run.compile; img/s from the loop's logged windows."""
    # reslab's own data path: the uint8 set on the device, augmented there; the windows end in a host sync.
    # An evaluation half-way and one at the end: stage 4 evaluates inside its CUDA-graph runs, so that path is
    # exercised here first (evaluation and checkpointing time is outside the img/s windows)
    if ctx.cifar is None:
        stage.note(f"CIFAR runs skipped: {ctx.cifar_what}")
        return
    from torch._dynamo.utils import counters
    s, dev = ctx.sizes, ctx.device
    until = ctx.stage_until if until is None else until
    t = _cifar_table(stage, ctx)
    wanted = {m for _, m in plan.cifar_variants(dev)}
    for mode in modes:
        if ctx.stopping():
            return
        if mode not in wanted:
            stage.note(f"CIFAR {model} {mode}: skipped (CUDA graphs need CUDA)" if mode == "reduce-overhead"
                       else f"CIFAR {model} {mode}: skipped on {dev.type}")
            continue
        if mode != "off" and not (ctx.tiny or dev.type != "cuda" or until - time.monotonic() > COMPILE_EST_S["cifar"]):
            stage.note(f"CIFAR {model} {mode}: skipped, under {COMPILE_EST_S['cifar']:.0f} s left")
            continue
        torch._dynamo.reset()  # a fresh compilation cache per run (and no recompile limit reached across runs)
        skips0 = counters["inductor"]["cudagraph_skips"]
        over = {"model": model, "data.source": ctx.cifar, "batch_size": s.cifar_batch, "schedule.steps": s.cifar_steps,
                "run.eval_every": max(1, s.cifar_steps // 2), "run.log_every": s.cifar_log, "run.compile": mode,
                **ctx.run_defaults(f"speed-{model}-{mode}")}
        with captured_logs() as cudagraph_msgs:
            out = run_training("cifar-paper", over, until)
        sp = steady_speed(out.train_windows(), s.cifar_batch)
        ctx.measured.setdefault("cifar", {}).setdefault(model, {})[mode] = sp
        ctx.save_measured()
        eager = ctx.measured["cifar"][model].get("off", {}).get("img_s")
        evals = [r for r in out.records if r.get("kind") == "eval"]
        t.rows.append({"model": model, "mode": dict((m, lbl) for lbl, m in plan.cifar_variants(dev)).get(mode, mode),
                       "img_s": sp.get("img_s", float("nan")), "ratio": f"{sp['img_s'] / eager:.2f}x"
                       if eager and sp.get("img_s") else "-", "compile_s": sp.get("compile_s", float("nan")),
                       "wall": out.wall_s, "skips": counters["inductor"]["cudagraph_skips"] - skips0,
                       "evals": " / ".join(f"{100 * e['test/top1_err']:.1f} %" for e in evals
                                           if e.get("test/top1_err") is not None) or "-",
                       "status": out.status})
        for m in cudagraph_msgs[:5]:
            stage.note(f"CIFAR {model} {mode}: torch's cudagraphs log: {m}")
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
                               ("skips", "CUDA-graph skips"), ("evals", "test error at the evaluations"),
                               ("status", "run")])
