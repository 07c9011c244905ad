"""The engine on a CUDA device (bf16, channels_last, compile): skipped cleanly where there is none."""
import json

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]


def test_train_and_resume_on_cuda(tmp_path):
    from reslab.training import build_config, train
    over = {"model_args.depth": 8, "batch_size": 64, "schedule.steps": 40, "run.out": str(tmp_path),
            "run.name": "gpu", "run.progress": False, "run.device": "cuda", "run.eval_every": 20}
    r = train(build_config("default", over))
    summary = json.loads((r.dir / "summary.json").read_text())
    assert summary["device"].startswith("cuda") and r.final["test/top1_err"] < 0.9
    assert summary["amp"] in ("torch.bfloat16", "None") and summary["peak_mem_mib"] > 0


def test_peak_memory_in_the_summary_is_the_runs_own(tmp_path):
    """The GPU proof found a ResNet-20 run reporting 12 GiB: the peak of a ResNet-50 benchmark earlier in the
    same process. A run resets CUDA's peak counter when it starts."""
    from reslab.training import build_config, train
    big = torch.empty(2 * 2**30, dtype=torch.uint8, device="cuda")  # a 2 GiB peak before the run
    del big
    over = {"model_args.depth": 8, "batch_size": 64, "schedule.steps": 5, "run.out": str(tmp_path),
            "run.name": "peak", "run.progress": False, "run.device": "cuda"}
    r = train(build_config("default", over))
    summary = json.loads((r.dir / "summary.json").read_text())
    assert 0 < summary["peak_mem_mib"] < 1024, summary["peak_mem_mib"]


def test_a_cuda_run_in_a_fresh_process_with_amp_off(tmp_path):
    """With --run.amp off nothing initialises CUDA before the run resets its peak-memory counter (which raises on
    an uninitialised CUDA): a fresh process, as a user's first command, must train."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "reslab", "train", "--model-arg", "depth=8", "--steps", "3",
                          "--batch-size", "32", "--run.device", "cuda", "--run.amp", "off", "--run.progress", "false",
                          "--out", str(tmp_path), "--name", "fresh"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "fresh" / "summary.json").read_text())["peak_mem_mib"] > 0


def test_whole_model_on_cuda_matches_cpu():
    from reslab import create_model
    m = create_model("resnet20").eval()
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m.cuda()(x.cuda()).cpu(), m.cpu()(x), atol=1e-3, rtol=1e-3)
