"""benchmarks/gpu_proof.py: its CPU mode end to end (so that it cannot rot before a GPU runs it), and the
GPU-specific choices it makes, checked with torch.cuda mocked."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_proof.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpuproof import core, plan  # noqa: E402


def _proof(tmp_path: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"),
                           *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.timeout(300)
def test_tiny_cpu_proof_runs_every_stage(tmp_path):
    proc = _proof(tmp_path, "--device", "cpu", "--tiny")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "out" / "gpu_proof.json").read_text())
    stages = doc["stages"]
    assert list(stages) == list(plan.STAGES)
    assert all(s["status"] == "done" for s in stages.values()), {k: (s["status"], s["notes"]) for k, s in stages.items()}
    assert stages["env"]["facts"]["torch"] == torch.__version__
    checks = [r for t in stages["correctness"]["tables"] for r in t["rows"] if "pass" in r]
    assert len(checks) >= 4 and all(r["pass"] is True for r in checks), checks
    tables = {t["title"].split(",")[0]: t["rows"] for t in stages["throughput"]["tables"]}
    assert tables["CIFAR training through reslab.training.train"][0]["img_s"] > 0
    big = tables["resnet18 training"]
    ref = next((r for r in big if r["variant"].startswith("torchvision")), None)
    for r in big:
        assert r["img_s"] > 0
        if ref is not None:  # the ratio is reslab's speed over torchvision's, measured in the same process
            assert float(r["ratio"].rstrip("x")) == pytest.approx(r["img_s"] / ref["img_s"], abs=0.006)
    tta = stages["accuracy"]["tables"][0]["rows"][0]
    assert tta["status"] == "done" and 0 <= tta["test_err"] <= 100
    import reslab
    model = reslab.load_model(tmp_path / "out" / tta["weights"])  # the weights travel back and load by themselves
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    assert stages["e2e"]["tables"][0]["rows"][0]["img_s"] > 0
    md = (tmp_path / "out" / "gpu_proof.md").read_text()
    assert all(f"## {i}." in md for i in range(1, 6))
    assert len(list((tmp_path / "out").iterdir())) <= 8  # what the device tool brings back from $OUT


@pytest.mark.timeout(60)
def test_an_exhausted_budget_skips_and_says_so(tmp_path):
    import gpu_proof  # in this process (a subprocess would spend seconds importing torch): its clock started at import
    old = signal.getsignal(signal.SIGTERM)
    try:
        rc = gpu_proof.main(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--device", "cpu",
                             "--tiny", "--budget-s", "0.5", "--stages", "correctness,accuracy"])
    finally:
        signal.signal(signal.SIGTERM, old)
    assert rc == 0
    stages = json.loads((tmp_path / "out" / "gpu_proof.json").read_text())["stages"]
    assert list(stages) == ["correctness", "accuracy"]
    for s in stages.values():
        assert s["status"] == "skipped" and "budget" in s["notes"][0]


def test_stage_selection():
    assert plan.parse_stages("all") == list(plan.STAGES)
    assert plan.parse_stages("4,env,2") == ["env", "correctness", "accuracy"]
    with pytest.raises(ValueError, match="unknown stage"):
        plan.parse_stages("warp")


def _speed(monkeypatch, device: str, bf16: bool = True, **run):
    """reslab's own resolution of the speed switches, with torch.cuda mocked for device 'cuda'."""
    from reslab.training import build_config
    from reslab.training.device import resolve_speed
    if device.startswith("cuda"):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    return resolve_speed(build_config("cifar-paper", {"run.device": device, **run}).run)


def test_cuda_defaults_are_bf16_channels_last_compiled(monkeypatch):
    speed = _speed(monkeypatch, "cuda")
    assert (speed.device.type, speed.amp_dtype, speed.channels_last, speed.compile_mode) == \
        ("cuda", torch.bfloat16, True, "default")
    variants = plan.big_variants(speed)
    assert [(v.source, v.amp, v.channels_last, v.compile_mode) for v in variants] == [
        ("reslab", torch.bfloat16, True, "default"),       # what `reslab train` does on a GPU
        ("reslab", torch.bfloat16, True, None),            # its eager twin
        ("torchvision", torch.bfloat16, True, None)]       # the user's comparison: AMP + channels_last, eager
    assert "AMP bf16" in variants[2].label


def test_a_gpu_without_bf16_trains_fp32_everywhere(monkeypatch):
    speed = _speed(monkeypatch, "cuda", bf16=False)
    assert speed.amp_dtype is None
    assert all(v.amp is None for v in plan.big_variants(speed))


def test_cpu_has_no_compiled_variant(monkeypatch):
    speed = _speed(monkeypatch, "cpu")
    variants = plan.big_variants(speed)
    assert [v.source for v in variants] == ["reslab", "torchvision"] and variants[0].compile_mode is None


def test_cuda_graph_path_is_chosen_on_cuda_only(monkeypatch):
    cuda = plan.cifar_variants(torch.device("cuda"))
    assert [m for _, m in cuda] == ["off", "reduce-overhead", "auto"]
    assert plan.cifar_variants(torch.device("cpu")) == [("eager", "off")]
    # reslab passes the mode through to torch.compile (what the CIFAR runs rely on)
    assert _speed(monkeypatch, "cuda", **{"run.compile": "reduce-overhead"}).compile_mode == "reduce-overhead"
    assert plan.compile_backend(torch.device("cuda"), tiny=True) == "inductor"
    assert plan.compile_backend(torch.device("cpu"), tiny=False) == "inductor"
    assert plan.compile_backend(torch.device("cpu"), tiny=True) == "aot_eager"


def test_train_step_compiles_with_the_mode_and_runs_under_autocast(monkeypatch):
    from gpuproof import throughput
    seen = {}

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            seen["autocast"] = (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"))
            return self.fc(x)

    def fake_compile(model, **kw):
        seen["compile"] = kw
        return model
    monkeypatch.setattr(torch, "compile", fake_compile)
    v = plan.Variant("x", "reslab", torch.bfloat16, False, "reduce-overhead")
    step = throughput._train_step(Probe(), v, torch.randn(2, 4), torch.tensor([0, 2]))
    step()
    assert seen["compile"] == {"mode": "reduce-overhead"}
    assert seen["autocast"] == (True, torch.bfloat16)


def test_cifar_runs_reach_reslab_with_the_cuda_graph_mode(monkeypatch, tmp_path):
    from gpuproof import throughput
    from gpuproof.context import Context
    from gpuproof.core import Budget, Stage
    from gpuproof.runs import RunOutcome
    calls = []

    def fake_run(recipe, overrides, until, resume=None):
        calls.append(overrides)
        windows = [{"kind": "train", "step": 2 * (i + 1), "img_s": 1000.0} for i in range(4)]
        return RunOutcome(tmp_path, "done", 1.0, windows)
    monkeypatch.setattr(throughput, "run_training", fake_run)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch._dynamo, "reset", lambda: None)
    ctx = Context(torch.device("cuda", 0), _speed(monkeypatch, "cuda"), plan.TINY, True, tmp_path, tmp_path,
                  Budget(60, time.monotonic()), "t", cifar="data", cifar_what="data", stage_until=time.monotonic() + 60)
    throughput.cifar(ctx, Stage("throughput", "3"), "resnet20", ("off", "reduce-overhead"))
    assert [(c["run.compile"], c["run.device"], c["model"]) for c in calls] == [
        ("off", "cuda:0", "resnet20"), ("reduce-overhead", "cuda:0", "resnet20")]
    # an evaluation half-way: stage 4 evaluates inside its CUDA-graph runs, stage 3 exercises that path first
    assert all(c["run.eval_every"] == plan.TINY.cifar_steps // 2 for c in calls)
    assert set(ctx.measured["cifar"]["resnet20"]) == {"off", "reduce-overhead"}  # what stage 4 chooses from
    # ... and what a later call of stage 4 alone (same --work) plans with
    again = _ctx(tmp_path, "cuda")
    assert again.load_measured() and set(again.measured["cifar"]["resnet20"]) == {"off", "reduce-overhead"}


def _ctx(tmp_path: Path, device: str = "cpu", sizes=plan.TINY, tiny: bool = True, budget_s: float = 60.0):
    from gpuproof.context import Context
    now = time.monotonic()
    return Context(torch.device(device, 0) if device == "cuda" else torch.device(device), None, sizes, tiny,
                   tmp_path, tmp_path, core.Budget(budget_s, now), "t", cifar="data", cifar_what="data",
                   stage_until=now + budget_s - 10)


def test_stage_3_runs_the_headline_early(tmp_path):
    from gpuproof import throughput
    names = [name for name, *_ in throughput.parts(_ctx(tmp_path, "cuda", plan.FULL, tiny=False))]
    assert names == ["CIFAR resnet20 eager", "resnet50 training", "CIFAR resnet20 CUDA graphs", "resnet50 inference",
                     "CIFAR resnet56", "CIFAR resnet20 auto"]
    assert [name for name, *_ in throughput.parts(_ctx(tmp_path, "cpu", plan.FULL, tiny=False))] == [
        "CIFAR resnet20 eager", "resnet50 training", "resnet50 inference", "CIFAR resnet56"]


def test_stage_2_checks_compilation_before_the_trainings():
    from gpuproof import correctness
    assert list(correctness.SHARES) == ["presets", "torchvision / timm", "compiled vs eager", "train + resume"]
    shares = list(correctness.SHARES.values())
    assert shares == sorted(shares) and shares[-1] == 1.0 and shares[0] <= 0.3


def test_reslabs_best_is_never_torchvisions(tmp_path):
    from gpuproof import throughput
    ctx = _ctx(tmp_path, "cuda", plan.FULL, tiny=False)
    stage = core.Stage("throughput", "3")
    t = stage.table("resnet50 training, batch 256", [("variant", "variant")])
    variants = [plan.Variant("reslab eager", "reslab", torch.bfloat16, True, None),
                plan.Variant("torchvision AMP", "torchvision", torch.bfloat16, True, None)]
    times = {"reslab eager": [2.0, 2.0], "torchvision AMP": [1.0]}  # torchvision twice as fast
    throughput._big_rows(ctx, stage, t, True, variants, times, {k: 1.0 for k in times}, {k: "-" for k in times})
    assert stage.facts["reslab's best ResNet-50 training vs the anchor"].startswith("reslab eager:")
    assert [r["ratio"] for r in t.rows] == ["0.50x", "1.00x"]
    assert ctx.measured["big_train_eager"] == {"label": "reslab eager", "img_s": 15 * 256 / 2.0}  # stage 5's figure


def test_the_budget_at_540_s():
    caps = plan.stage_caps(540)
    assert caps == {"env": 20, "correctness": 75, "throughput": 200, "e2e_reserve": 50}
    stages = list(plan.STAGES)
    now, got = 10.0, {}  # the budget counts from the process's start (t = 0): torch's import took 10 s
    for key in stages:  # every stage using all of its time
        until = plan.stage_until(key, stages, caps, now, 540.0)
        got[key], now = until - now, until
    assert got == {"env": 20, "correctness": 75, "throughput": 200, "accuracy": 175, "e2e": 50}
    assert now == 530  # 10 s left to write the last results
    # the last selected stage gets all that is left; one with a later stage selected keeps its cap
    assert plan.stage_until("throughput", ["throughput"], caps, 10, 540) == 530
    assert plan.stage_until("throughput", ["throughput", "accuracy"], caps, 10, 540) == 210
    assert plan.stage_until("accuracy", ["accuracy"], caps, 10, 540) == 530
    assert plan.stage_until("accuracy", ["accuracy", "e2e"], caps, 10, 540) == 480
    # a rerun of stage 4 with 150 s: all of it, less the 10 s to write the results
    assert plan.stage_until("accuracy", ["accuracy"], plan.stage_caps(150), 8, 150) == 140


def test_stage_5_stays_within_one_epoch():
    full = plan.FULL
    steps, log = plan.e2e_steps(full.e2e_images, full.e2e_batch, full.e2e_steps, full.e2e_log)
    assert (steps, log) == (full.e2e_steps, full.e2e_log) and steps * full.e2e_batch <= full.e2e_images
    assert plan.e2e_steps(3925, 256, 60, 10) == (15, 3)       # Imagenette's val split: 15 batches, 5 windows
    assert plan.e2e_steps(16_000, 256, 60, 10, fit=20) == (20, 5)
    assert plan.e2e_steps(100, 256, 60, 10)[0] == 0            # under one batch: the stage skips
    t = plan.TINY
    steps, _ = plan.e2e_steps(t.e2e_images, t.e2e_batch, t.e2e_steps, t.e2e_log)
    assert 0 < steps * t.e2e_batch <= t.e2e_images


def test_a_full_cuda_run_without_the_cifar_archive_stops_at_once(monkeypatch):
    import gpu_proof
    from gpuproof import data
    monkeypatch.setattr(data, "CIFAR_ARCHIVE", ROOT / "gpu-data" / "absent-for-the-test.tar.gz")
    stages = list(plan.STAGES)

    def problem(*args: str, stages=stages):
        return gpu_proof.missing_data(gpu_proof.parse_args(["--out", "x", *args]), stages)
    assert "no CIFAR-10 archive" in problem("--device", "cuda")
    assert problem("--device", "cuda", "--cifar", "none") is None          # asked for explicitly
    assert problem("--device", "cuda", "--tiny") is None                   # generated data
    assert problem("--device", "cpu") is None                              # a CPU run only notes it
    assert problem("--device", "cuda", stages=["env", "correctness"]) is None
    assert "not found" in problem("--device", "cpu", "--tiny", "--cifar", "/no/such.tar.gz")


def test_timing_synchronises_the_gpu(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("sync"))
    core.timed(lambda: calls.append("step"), 3, torch.device("cuda", 0))
    assert calls == ["sync", "step", "step", "step", "sync"]  # no host clock read while work is queued
    calls.clear()
    core.timed(lambda: calls.append("step"), 2, torch.device("cpu"))
    assert calls == ["step", "step"]


def test_tta_plan_fits_the_budget():
    fast = {"off": {"img_s": 20_000.0, "compile_s": 1.0}, "reduce-overhead": {"img_s": 60_000.0, "compile_s": 40.0}}
    full = plan.plan_tta(400, fast, 128, first=True)
    assert (full.action, full.steps, full.compile) == ("full", 64_000, "reduce-overhead")
    short = plan.plan_tta(150, fast, 128, first=True)
    assert short.action == "scaled" and 2000 <= short.steps < 64_000 and short.estimate_s <= 150
    assert short.steps % 100 == 0 and plan.scaled_milestones(short.steps) == [short.steps // 2, 3 * short.steps // 4]
    assert plan.plan_tta(150, fast, 128, first=False).action == "skip"  # ResNet-56 / plain-56: the full recipe or nothing
    assert plan.plan_tta(400, {}, 128, first=True).action == "stop"     # nothing measured: full, cut at the deadline
    assert plan.plan_tta(400, {}, 128, first=False).action == "skip"
    assert plan.plan_tta(400, fast, 128, first=True, forced_steps=500).steps == 500
    # a short run does not pay for compilation: eager wins
    assert plan.choose_compile(fast, 200, 128)[0] == "off"


def test_deadline_cuts_or_stops_gracefully():
    t0 = time.monotonic()
    with pytest.raises(core.Deadline):
        with core.deadline(time.monotonic() + 0.2):
            while True:
                pass
    assert time.monotonic() - t0 < 2
    stop = []
    old = signal.signal(signal.SIGINT, lambda *a: stop.append(True))  # stands in for reslab's trainer
    try:
        with core.deadline(time.monotonic() + 0.2, graceful=True, grace_s=5) as fired:
            while not stop:
                pass
    finally:
        signal.signal(signal.SIGINT, old)
    assert fired == [True]
    # nested: the inner deadline puts the outer one's timer back
    with pytest.raises(core.Deadline):
        with core.deadline(time.monotonic() + 0.4):
            with core.deadline(time.monotonic() + 5):
                pass
            while True:
                pass


@pytest.mark.timeout(60)
def test_a_deadline_inside_torch_compile_surfaces_as_deadline():
    # Dynamo and Inductor wrap every Exception raised while compiling (BackendCompilerFailed, ...): the deadline
    # must pass through them, or a stage cut during a compilation reports a FAILED part
    import torch._dynamo
    entered = []

    def slow_backend(gm, example_inputs):
        entered.append(True)
        time.sleep(30)  # a compilation that outlasts its deadline
        return gm.forward

    torch._dynamo.reset()
    try:
        torch.compile(lambda x: x - 1, backend="eager")(torch.ones(2))  # Dynamo's imports, before the clock starts
        fn = torch.compile(lambda x: torch.relu(x) * 2 + 1, backend=slow_backend)
        t0 = time.monotonic()
        with pytest.raises(core.Deadline):
            with core.deadline(time.monotonic() + 1.0):  # tracing takes ~0.1 s: the timer fires in the backend
                fn(torch.ones(3))
        assert entered and time.monotonic() - t0 < 3
    finally:
        torch._dynamo.reset()


@pytest.mark.timeout(30)
def test_the_grace_ends_before_the_enclosing_deadline():
    stop = []
    old = signal.signal(signal.SIGINT, lambda *a: stop.append(True))  # a trainer that does not stop
    t0 = time.monotonic()
    try:
        with pytest.raises(core.Deadline):
            with core.deadline(t0 + 1.6):
                with core.deadline(t0 + 0.2, graceful=True, grace_s=30) as fired:
                    while True:
                        pass
    finally:
        signal.signal(signal.SIGINT, old)
    assert stop == [True] and fired == [True]
    # SIGINT at 0.2 s, then a grace of 0.4 s (not 30), ending a second before the enclosing deadline
    assert time.monotonic() - t0 < 1.2


@pytest.mark.timeout(30)
def test_a_sigterm_ends_the_proof_like_the_deadline(tmp_path):
    ctx = _ctx(tmp_path)
    stage = core.Stage("accuracy", "4")
    old = signal.signal(signal.SIGTERM, core.on_sigterm)

    def part():
        os.kill(os.getpid(), signal.SIGTERM)
        while True:
            time.sleep(0.01)
    try:
        assert not ctx.guarded(stage, "a part", part)
        assert "stopped by SIGTERM" in stage.notes[-1] and core.stop_code() == 143
        assert ctx.budget.left() <= 0  # nothing new fits
        assert not ctx.guarded(stage, "the next part", lambda: None) and "not started" in stage.notes[-1]
    finally:
        signal.signal(signal.SIGTERM, old)
        core.reset_stop()


def test_a_training_run_stopped_by_a_signal_keeps_its_outcome(monkeypatch, tmp_path):
    # reslab's trainer takes SIGTERM (and Ctrl-C) itself: it saves a checkpoint and raises Interrupted
    from gpuproof import runs
    from reslab.training import Interrupted

    def fake_train(cfg, resume=None):
        raise Interrupted("interrupted at step 3: checkpoint saved")
    monkeypatch.setattr(runs, "train", fake_train)
    try:
        out = runs.run_training("cifar-paper", {"run.out": str(tmp_path), "run.name": "x", "run.device": "cpu"},
                                time.monotonic() + 30)
        assert out.status == "interrupted" and core.stop_reason()  # its row is written, then the proof ends
    finally:
        core.reset_stop()


def test_cudagraph_skip_messages_are_captured():
    with core.captured_logs() as msgs:
        logging.getLogger(core.CUDAGRAPH_LOGGERS[0]).warning("skipping cudagraphs due to %s", "mutated inputs")
    assert msgs == ["skipping cudagraphs due to mutated inputs"]


@pytest.mark.timeout(120)
def test_a_training_run_stops_at_its_deadline_with_a_checkpoint(tmp_path):
    from gpuproof.runs import run_training
    over = {"model": "resnet8", "data.source": "digits", "batch_size": 16, "schedule.steps": 10**6,
            "run.log_every": 5, "run.out": str(tmp_path), "run.name": "cut", "run.device": "cpu",
            "run.progress": False, "run.tensorboard": False, "run.compile": "off"}
    out = run_training("cifar-paper", over, time.monotonic() + 4)
    assert out.status == "stopped", out
    assert out.weights() is not None and out.steps() > 0 and out.wall_s < 40


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.timeout(600)
def test_tiny_proof_on_cuda(tmp_path):
    proc = _proof(tmp_path, "--device", "cuda", "--tiny", "--stages", "env,correctness,throughput", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = json.loads((tmp_path / "out" / "gpu_proof.json").read_text())["stages"]
    checks = [r for t in stages["correctness"]["tables"] for r in t["rows"] if "pass" in r]
    assert checks and all(r["pass"] is True for r in checks), checks
