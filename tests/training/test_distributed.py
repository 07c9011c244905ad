"""DDP through torchrun on CPU (gloo): 2 processes train, only rank 0 writes; a dead rank ends the job."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)


def torchrun(tmp_path, name, *extra, steps=30):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "reslab", "train", "--model", "resnet20", "--model-arg", "depth=8", "--batch-size", "32",
            "--out", str(tmp_path), "--name", name, "--steps", str(steps), "--run.eval_every", "15",
            "--run.log_every", "5", "--run.progress", "false", *extra]


def test_two_process_gloo_training(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(torchrun(tmp_path, "ddp"), env=env, capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "ddp"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["test/top1_err"] < 0.9
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if r["kind"] == "train"] == [5, 10, 15, 20, 25, 30]  # one writer, not two
    assert len(list((run / "tensorboard").iterdir())) == 1
    assert (run / "checkpoints" / "last" / "model.safetensors").is_file()


def _children(pid):
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # field 4 of /proc/PID/stat: the parent's pid
            kids.append(int(stat.parent.name))
    return sorted(kids)


def test_a_dead_rank_ends_the_job_with_an_error(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RESLAB_DIST_TIMEOUT": "30"}
    proc = subprocess.Popen(torchrun(tmp_path, "dies", steps=100000), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "dies" / "metrics.jsonl"
    deadline = time.time() + 180
    while (not metrics.exists() or not metrics.read_text()) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    workers = _children(proc.pid)
    assert len(workers) == 2, workers
    os.kill(workers[1], signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the surviving rank hung after its peer died")
    assert proc.returncode != 0
    assert "FAILED" in err or "Error" in err


def test_sync_bn_on_cpu_is_a_clear_error(tmp_path):
    from reslab import ReslabError
    from reslab.training import build_config, train
    cfg = build_config("default", {"run.sync_bn": True, "run.device": "cpu", "run.out": str(tmp_path)})
    with pytest.raises(ReslabError, match="SyncBatchNorm is GPU-only"):
        train(cfg)


def test_two_process_finetune_with_frozen_stages(tmp_path):
    import torch
    from safetensors.torch import load_file

    from reslab import create_model, save_weights
    pretrained = tmp_path / "pre.safetensors"
    save_weights(create_model("resnet20", depth=8), pretrained, name="resnet20")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "reslab",
           "finetune", "--weights", str(pretrained), "--freeze-stages", "1", "--backbone-lr", "0.5",
           "--batch-size", "32", "--steps", "6", "--out", str(tmp_path), "--name", "ft", "--run.progress", "false"]
    out = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((tmp_path / "ft" / "summary.json").read_text())["world_size"] == 2
    a, b = load_file(str(pretrained)), load_file(str(tmp_path / "ft/checkpoints/last/model.safetensors"))
    assert torch.equal(a["layer1.0.conv1.weight"], b["layer1.0.conv1.weight"])  # frozen on both ranks
    assert not torch.equal(a["layer2.0.conv1.weight"], b["layer2.0.conv1.weight"])


def test_ctrl_c_on_one_rank_stops_every_rank_at_one_checkpoint_and_resume_is_exact(tmp_path):
    import torch
    from safetensors.torch import load_file
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RESLAB_DIST_TIMEOUT": "60"}
    extra = ("--run.ckpt_every", "10", "--run.eval_every", "1000")
    straight = subprocess.run(torchrun(tmp_path, "straight", *extra, steps=80), env=env, capture_output=True,
                              text=True, timeout=240)
    assert straight.returncode == 0, straight.stderr[-3000:]
    proc = subprocess.Popen(torchrun(tmp_path, "cut", *extra, steps=80), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    ckpts = tmp_path / "cut" / "checkpoints"
    deadline = time.time() + 180
    while not (ckpts / "step-00000010").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    workers = _children(proc.pid)
    assert len(workers) == 2, workers
    os.kill(workers[1], signal.SIGINT)  # one rank only: the other learns of it at the next metrics all-reduce
    t0 = time.time()
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("a rank kept waiting in a collective after its peer was interrupted")
    assert time.time() - t0 < 50  # well under the 60 s collective timeout: nobody waited for it
    assert err.count("interrupted at step") >= 1 and "Timeout" not in err, err[-3000:]
    cut_at = int(os.readlink(ckpts / "last").split("-")[1])
    assert 10 < cut_at < 80 and cut_at % 5 == 0  # stopped together at an agreed (log) step
    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                              "-m", "reslab", "train", "--resume", str(tmp_path / "cut")], env=env,
                             capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = load_file(str(tmp_path / "straight/checkpoints/last/model.safetensors"))
    b = load_file(str(tmp_path / "cut/checkpoints/last/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed DDP weights differ from the uninterrupted run"
