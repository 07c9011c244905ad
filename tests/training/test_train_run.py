"""End to end on the bundled digits: accuracy, files, exact resume after SIGKILL / Ctrl-C, NaN, disk full."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reslab import ReslabError, read_checkpoint
from reslab.training import build_config, train

FAST = {"model": "resnet20", "model_args.depth": 8, "batch_size": 32, "run.progress": False}


def cfg(tmp_path, name, **over):
    return build_config("default", {**FAST, "run.out": str(tmp_path), "run.name": name, **over})


def test_default_trains_well_above_chance_and_writes_everything(tmp_path):
    r = train(cfg(tmp_path, "run", **{"schedule.epochs": 4}))
    assert r.final["test/top1_err"] < 0.5  # chance is 90 % error
    d = r.dir
    for f in ["config.yaml", "metrics.jsonl", "summary.json", "curves.png", "confusion_test.png"]:
        assert (d / f).is_file(), f
    assert (d / "checkpoints" / "last" / "model.safetensors").is_file() and (d / "checkpoints" / "best").is_symlink()
    recs = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert {"train", "eval"} == {r["kind"] for r in recs} and all(r["img_s"] > 0 for r in recs if r["kind"] == "train")
    # read back with TensorBoard's own reader, not reslab's
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(d / "tensorboard"))
    acc.Reload()
    losses = acc.Scalars("train/loss")
    logged = [r for r in recs if r["kind"] == "train"]
    assert [e.step for e in losses] == [r["step"] for r in logged]
    assert all(abs(e.value - r["loss"]) < 1e-5 for e, r in zip(losses, logged))
    assert [e.value for e in acc.Scalars("test/top1_err")][-1] == pytest.approx(r_final := r.final["test/top1_err"])
    assert r_final < 0.5
    meta = read_checkpoint(d / "checkpoints/last/model.safetensors").metadata
    assert json.loads(meta["classes"]) == [str(i) for i in range(10)] and "mean" in json.loads(meta["preprocess"])
    state = torch.load(d / "checkpoints/last/state.pt", weights_only=True)
    assert state["step"] == r.steps and "optimizer" in state and "rng" in state


def _cli(tmp_path, name, *extra):
    return [sys.executable, "-m", "reslab", "train", "--model", "resnet20", "--model-arg", "depth=8",
            "--batch-size", "32", "--out", str(tmp_path), "--name", name, "--steps", "120", "--run.ckpt_every", "10",
            "--run.eval_every", "40", "--run.progress", "false", *extra]


def _final_weights(run: Path) -> dict:
    return load_file(str(run / "checkpoints" / "last" / "model.safetensors"))


@pytest.mark.parametrize("sig,extra", [
    (signal.SIGKILL, ("--optim.ema_decay", "0.9")),
    pytest.param(signal.SIGTERM, (), marks=pytest.mark.slow),  # the handler DDP's ctrl-c test exercises by default
    pytest.param(signal.SIGKILL, (), marks=pytest.mark.slow),  # what sigkill-ema checks, less the EMA
    pytest.param(signal.SIGINT, (), marks=pytest.mark.slow)],  # the same handler as SIGTERM
    ids=["sigkill-ema", "sigterm", "sigkill", "sigint"])
def test_interrupted_run_resumes_bit_identically(tmp_path, sig, extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_cli(tmp_path, "straight", *extra), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(_cli(tmp_path, "cut", *extra), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpts = tmp_path / "cut" / "checkpoints"
    deadline = time.time() + 120
    while not (ckpts / "step-00000020").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (-9 if sig == signal.SIGKILL else 130), err.decode()[-2000:]
    cut_at = int(os.readlink(ckpts / "last").split("-")[1])
    assert cut_at < 120  # it really was interrupted before the end
    if sig != signal.SIGKILL:
        assert b"--resume" in err and b"Traceback" not in err
    subprocess.run([sys.executable, "-m", "reslab", "train", "--resume", str(tmp_path / "cut")], check=True, env=env,
                   capture_output=True)
    a, b = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    # the whole run's metrics (what curves.png plots), across the resume, are the uninterrupted run's
    from reslab.training.report import whole_run_records

    def logged(run):
        return [{k: v for k, v in r.items() if k != "img_s"} for r in whole_run_records(run / "metrics.jsonl", [])]
    cut, straight = logged(tmp_path / "cut"), logged(tmp_path / "straight")
    # the one training window the interruption cut in two averages fewer steps after the resume: skip it
    split = min(r["step"] for r in straight if r["kind"] == "train" and r["step"] > cut_at)
    assert [r for r in cut if (r["kind"], r["step"]) != ("train", split)] == \
        [r for r in straight if (r["kind"], r["step"]) != ("train", split)]
    # the summary's total wall time counts the interrupted segment too (up to its checkpoint)
    cut_s, straight_s = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("cut", "straight"))
    assert cut_s["wall_s_total"] > cut_s["wall_s"] > 0 and straight_s["wall_s_total"] == straight_s["wall_s"]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    c = cfg(tmp_path, "nan", **{"schedule.steps": 60, "schedule.name": "constant", "schedule.warmup_steps": 10,
                                "schedule.warmup_mode": "constant", "schedule.warmup_lr": 0.01, "optim.lr": 1e12,
                                "run.ckpt_every": 10, "run.eval_every": 1000, "run.log_every": 5})
    with pytest.raises(ReslabError, match="NaN or infinite by step .* last good checkpoint .* untouched"):
        train(c)
    last = tmp_path / "nan" / "checkpoints" / "last"
    assert os.readlink(last) == "step-00000010"
    assert all(torch.isfinite(t).all() for t in load_file(str(last / "model.safetensors")).values())


def test_disk_full_during_checkpoint_keeps_earlier_ones(tmp_path, monkeypatch):
    c = cfg(tmp_path, "full", **{"schedule.steps": 30, "run.ckpt_every": 10, "run.eval_every": 1000})
    real = torch.save
    calls = {"n": 0}

    def flaky(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", flaky)
    with pytest.raises(ReslabError, match="disk full .* earlier checkpoints are intact"):
        train(c)
    ckpts = tmp_path / "full" / "checkpoints"
    assert os.readlink(ckpts / "last") == "step-00000010"
    assert not list(ckpts.glob(".step-*"))


def test_existing_run_folder_is_not_overwritten(tmp_path):
    train(cfg(tmp_path, "once", **{"schedule.steps": 5}))
    with pytest.raises(ReslabError, match="--resume"):
        train(cfg(tmp_path, "once", **{"schedule.steps": 5}))
