"""Stage 4: time to accuracy (the rest of the budget): the cifar-paper recipe for ResNet-20 on the CIFAR-10
JPEG archive through reslab.training.train, then ResNet-56 and plain-56 if their full recipe fits.

It plans with the speeds stage 3 measured: in this process, else those an earlier call saved in --work (a rerun
with --stages accuracy and the same --work on the same machine), else a short eager run of its own (a probe,
~400 steps) measures one. --tta-steps N fixes ResNet-20's length instead (the 56-layer nets still run only if
their full recipe fits)."""
from __future__ import annotations

import shutil
import time

import torch

from . import plan
from .core import Stage, captured_logs
from .runs import run_training, steady_speed

PROBE_S = 60.0  # at most this long (or a quarter of the stage) for the probe
TITLE = "cifar-paper recipe"


def run(ctx, stage: Stage) -> None:
    if ctx.cifar is None:
        stage.note(f"skipped: {ctx.cifar_what}")
        stage.status = "skipped"
        return
    if not ctx.measured.get("cifar"):
        loaded = ctx.load_measured()
        if loaded:
            stage.note(f"planned with the speeds stage 3 measured in an earlier call: {loaded}")
    t = stage.table(f"{TITLE} (batch {ctx.sizes.cifar_batch}, SGD 0.1, lr / 10 at 50 % and 75 %) on "
                    f"{ctx.cifar_what}",
                    [("model", "model"), ("plan", "iterations"), ("compile", "run.compile"), ("status", "run"),
                     ("steps", "trained"), ("test_err", "test error %"), ("at", "at iteration"), ("wall", "wall s"),
                     ("img_s", "train img/s"), ("cpu", "CPU-2 reference"), ("weights", "weights")])
    first = ctx.sizes.tta_models[0]
    if not _speeds(ctx, first) and not ctx.tta_steps and not ctx.tiny:
        _probe(ctx, stage, first)
    for i, model in enumerate(ctx.sizes.tta_models):
        left = ctx.stage_until - time.monotonic()
        p = plan.plan_tta(left, _speeds(ctx, model), ctx.sizes.cifar_batch, first=i == 0,
                          forced_steps=ctx.tta_steps if i == 0 else 0)
        if p.action == "skip":
            stage.note(f"{model}: skipped, {p.why}")
            continue
        ctx.guarded(stage, model, _one, ctx, stage, t, model, p)


def _speeds(ctx, model: str) -> dict:
    """What stage 3 (or the probe) measured for the model; a plain net has its residual twin's layers: same speed."""
    speeds = ctx.measured.get("cifar", {})
    return speeds.get(model) or speeds.get(model.replace("plain", "resnet")) or {}


def _probe(ctx, stage: Stage, model: str) -> None:
    """No measured speed (stage 4 run alone, on a fresh --work): a short eager run measures one."""
    # eager: a compilation would cost more than the probe; the plan then trains eager as well
    from .throughput import cifar
    until = min(ctx.stage_until, time.monotonic() + max(20.0, min(PROBE_S, 0.25 * (ctx.stage_until - time.monotonic()))))
    stage.note(f"{model}: no speed measured (stage 3 not run, none saved in --work): a {ctx.sizes.cifar_steps}-step "
               f"eager probe first (pass --tta-steps N to skip it)")
    ctx.guarded(stage, "speed probe", cifar, ctx, stage, model, ("off",), until, until=until)


def _one(ctx, stage: Stage, t, model: str, p: plan.TtaPlan) -> None:
    over = {"model": model, "data.source": ctx.cifar, "batch_size": ctx.sizes.cifar_batch, "run.compile": p.compile,
            **ctx.run_defaults(f"tta-{model}")}
    if p.steps != plan.CIFAR_PAPER_STEPS:
        over.update({"schedule.steps": p.steps, "schedule.milestones": plan.scaled_milestones(p.steps),
                     "run.eval_every": max(1, min(2000, p.steps // 4)),
                     "run.log_every": max(1, min(100, p.steps // 4))})
    stage.note(f"{model}: {p.action}, {p.steps} iterations, run.compile {p.compile}: {p.why}")
    ctx.save()  # the plan is on file before the long run starts
    torch._dynamo.reset()
    with captured_logs() as cudagraph_msgs:
        out = run_training("cifar-paper", over, ctx.stage_until)
    for m in cudagraph_msgs[:5]:
        stage.note(f"{model}: torch's cudagraphs log: {m}")
    last = out.last_eval() or {}
    err = last.get("test/top1_err")
    weights = out.weights()
    name = ""
    if weights is not None:
        name = f"tta-{model}.safetensors"
        shutil.copyfile(weights, ctx.out / name)
    cpu = ""
    if model == "resnet20" and p.steps == plan.CIFAR_PAPER_STEPS:
        cpu = f"{plan.CPU_R20_FIGURE['test_err_pct']} % in {plan.CPU_R20_FIGURE['wall_h']} h"
        if out.status == "done":
            speedup = plan.CPU_R20_FIGURE["wall_h"] * 3600 / out.wall_s
            stage.facts["ResNet-20 full recipe, wall time vs CPU-2"] = f"{out.wall_s:.0f} s vs 3.1 h: {speedup:.0f}x"
    img_s = out.summary.get("train_img_s") or steady_speed(out.train_windows(), ctx.sizes.cifar_batch, 1).get("img_s")
    t.rows.append({"model": model, "plan": f"{p.steps} ({p.action})", "compile": p.compile, "status": out.status,
                   "steps": out.steps(), "test_err": 100 * err if err is not None else float("nan"),
                   "at": last.get("step", "-"), "wall": out.wall_s, "img_s": img_s or float("nan"), "cpu": cpu,
                   "weights": name or "-"})
    if out.status != "done":
        stage.note(f"{model}: {out.status} at iteration {out.steps()} of {p.steps}; the error shown is the "
                   f"last evaluation's (iteration {last.get('step', '-')}), not the recipe's final result")
        stage.problems += 1
