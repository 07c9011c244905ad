"""Stage 5: ImageNet-style input end to end (its reserve: the last 50 s of the default budget): ResNet-50
through reslab.training.train, eager, with --data.input whole (every crop cut from the whole JPEG, decoded by
DataLoader workers on the host's cores), against stage 3's synthetic-batch figure of reslab eager."""
from __future__ import annotations

import os
import time

import torch

from . import plan
from .core import Stage
from .data import count_files, image_size_summary, imagenet_style_source
from .runs import run_training, steady_speed

# eager (no compilation: a cold ResNet-50 compile alone would take more than the stage's reserve): workers'
# start, the first batches, cuDNN's benchmark of its kernels on the first steps
SETUP_EST_S = 25.0


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
    stage.facts["image size (width x height)"] = image_size_summary(os.path.join(source, "train"))
    workers = max(1, len(os.sched_getaffinity(0)) - 1) if not ctx.tiny else 0  # a core left for the training loop
    # like with like: stage 3's synthetic figure of reslab eager (same precision and layout, no compilation)
    syn = ctx.measured.get("big_train_eager") or {}
    syn_label, syn_rate = syn.get("label", ""), syn.get("img_s", 0.0)
    images = count_files(os.path.join(source, "train"))
    fit = None
    if syn_rate and not ctx.tiny:  # as many steps as fit at the synthetic speed (an upper bound)
        fit = int((ctx.stage_until - time.monotonic() - SETUP_EST_S) * syn_rate / s.e2e_batch)
    steps, log = plan.e2e_steps(images, s.e2e_batch, s.e2e_steps, s.e2e_log, fit)  # within one epoch
    if steps < 1:
        stage.note(f"skipped: {images} images, under one batch of {s.e2e_batch}")
        stage.status = "skipped"
        return
    over = {"model": s.e2e_model, "data.source": source, "data.input": "whole", "data.crop": s.e2e_crop,
            "data.workers": workers, "batch_size": s.e2e_batch, "schedule.steps": steps, "run.log_every": log,
            "run.eval_every": steps, "run.compile": "off", **ctx.run_defaults("e2e")}
    torch._dynamo.reset()
    out = run_training("imagenet-paper", over, ctx.stage_until)
    sp = steady_speed(out.train_windows(), s.e2e_batch)
    t = stage.table(f"{s.e2e_model} training (eager), batch {s.e2e_batch}, crops {s.e2e_crop}, --data.input whole, "
                    f"{workers} DataLoader workers, {steps} steps within one epoch",
                    [("what", "input"), ("img_s", "img/s"), ("ratio", "vs synthetic"), ("note", "")])
    t.rows.append({"what": "whole JPEGs, decoded per step", "img_s": sp.get("img_s", float("nan")),
                   "ratio": f"{sp['img_s'] / syn_rate:.2f}x" if syn_rate and sp.get("img_s") else "-",
                   "note": f"{out.steps()} steps, run {out.status}, wall {out.wall_s:.0f} s"})
    if syn_rate:
        t.rows.append({"what": f"synthetic batches on the device (stage 3, {syn_label})", "img_s": syn_rate,
                       "ratio": "1.00x", "note": "model step only"})
    else:
        stage.note("no stage-3 figure of reslab eager to compare with (throughput stage not run, or its eager "
                   "ResNet-50 timing failed)")
    if out.status != "done":
        stage.problems += 1
