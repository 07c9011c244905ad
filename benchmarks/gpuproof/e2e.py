"""Stage 5: ImageNet-style input end to end (if time is left): ResNet-50 through reslab.training.train with
--data.input whole (every crop cut from the whole JPEG, decoded by DataLoader workers on the host's cores),
against the synthetic-batch figure of stage 3."""
from __future__ import annotations

import os
import time

import torch

from .core import Stage
from .data import imagenet_style_source
from .runs import run_training, steady_speed

SETUP_EST_S = 45.0  # workers' start, the first batches, compilation (warm from stage 3's cache) on a GPU


def run(ctx, stage: Stage) -> None:
    s = ctx.sizes
    left = ctx.stage_until - time.monotonic()
    if not ctx.tiny and left < SETUP_EST_S + 15:
        stage.note(f"skipped: {left:.0f} s left, under the ~{SETUP_EST_S + 15:.0f} s this stage needs at least")
        stage.status = "skipped"
        return
    t0 = time.monotonic()
    source, what = imagenet_style_source(ctx.imagenette, s, ctx.tiny, ctx.work)
    stage.facts["data"] = f"{what} (prepared in {time.monotonic() - t0:.0f} s)"
    workers = max(1, len(os.sched_getaffinity(0)) - 1) if not ctx.tiny else 0  # a core left for the training loop
    # compare like with like: reslab's auto switches if stage 3 measured them (its compilation is then in
    # inductor's cache), else eager, whose compile time this stage could not afford
    synthetic = ctx.measured.get("big_train", {})
    syn_label = next((k for k in synthetic if k.startswith("reslab (auto")), "")
    compile_mode = "auto"
    if ctx.speed.compile_mode and not syn_label and not ctx.tiny:
        syn_label, compile_mode = "reslab eager", "off"
    syn_rate = synthetic.get(syn_label, 0.0)
    steps = s.e2e_steps
    if syn_rate and not ctx.tiny:  # as many steps as fit, at most e2e_steps, at the synthetic speed (an upper bound)
        fit = int((ctx.stage_until - time.monotonic() - SETUP_EST_S) * syn_rate / s.e2e_batch)
        steps = max(3 * s.e2e_log, min(steps, fit // s.e2e_log * s.e2e_log))
    over = {"model": s.e2e_model, "data.source": source, "data.input": "whole", "data.crop": s.e2e_crop,
            "data.workers": workers, "batch_size": s.e2e_batch, "schedule.steps": steps, "run.log_every": s.e2e_log,
            "run.eval_every": steps, "run.compile": compile_mode, **ctx.run_defaults("e2e")}
    torch._dynamo.reset()
    out = run_training("imagenet-paper", over, ctx.stage_until)
    sp = steady_speed(out.train_windows(), s.e2e_batch)
    t = stage.table(f"{s.e2e_model} training, batch {s.e2e_batch}, crops {s.e2e_crop}, --data.input whole, "
                    f"{workers} DataLoader workers",
                    [("what", "input"), ("img_s", "img/s"), ("ratio", "vs synthetic"), ("note", "")])
    t.rows.append({"what": "whole JPEGs, decoded per step", "img_s": sp.get("img_s", float("nan")),
                   "ratio": f"{sp['img_s'] / syn_rate:.2f}x" if syn_rate and sp.get("img_s") else "-",
                   "note": f"{out.steps()} steps, run {out.status}, wall {out.wall_s:.0f} s"})
    if syn_rate:
        t.rows.append({"what": f"synthetic batches on the device (stage 3, {syn_label})", "img_s": syn_rate,
                       "ratio": "1.00x", "note": "model step only"})
    else:
        stage.note("no stage-3 figure to compare with (throughput stage not run or failed)")
    if out.status != "done":
        stage.problems += 1
