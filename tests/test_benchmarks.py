"""The benchmark scripts run end to end at tiny sizes (their real runs are in docs/RESULTS.md)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_train_throughput_tiny():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/train_throughput.py"), "--tiny"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith(("resnet20", "resnet50"))]
    assert len(rows) == 2 and all("x" in r for r in rows)


@pytest.mark.timeout(600)
def test_checkpoint_memory_tiny():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/checkpoint_memory.py"), "--models", "resnet20",
                          "--batch", "4"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ratio" in out.stdout
