"""Shared fixtures: paths to ../shared (real data and weights), skipping cleanly when absent."""
from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WEIGHTS = SHARED / "weights"
DATA = SHARED / "data"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (shared real data/weights live beside the project root; a fresh clone has none)")
    return path


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    return need(WEIGHTS)


@pytest.fixture(scope="session")
def cifar10_test_dir(tmp_path_factory) -> Path:
    """The shared JPEG CIFAR-10 test split, extracted once per session into a temporary folder."""
    archive = need(DATA / "cifar10-jpeg.tar.gz")
    out = tmp_path_factory.mktemp("cifar10")
    with tarfile.open(archive) as tar:
        members = [m for m in tar if m.isfile() and m.name.lstrip("./").startswith("test/")]
        tar.extractall(out, members=members, filter="data")
    root = out / "test"
    assert root.is_dir(), f"no test/ folder in {archive}"
    return root


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def cifar_small(cifar10_test_dir, tmp_path_factory) -> Path:
    """A small real CIFAR-10 tree (JPEG copy): train/<class>/ 40 images each, test/<class>/ 30 each,
    all taken from the shared test split (no image in both)."""
    import shutil
    root = tmp_path_factory.mktemp("cifar_small")
    for cls in sorted(p.name for p in cifar10_test_dir.iterdir() if p.is_dir()):
        files = sorted((cifar10_test_dir / cls).iterdir())
        for split, chosen in (("train", files[:40]), ("test", files[40:70])):
            (root / split / cls).mkdir(parents=True)
            for f in chosen:
                shutil.copy(f, root / split / cls / f.name)
    return root


def assert_one_line_error(proc, contains: str = "") -> str:
    """A user error from the CLI: exit code 2, no traceback, the error on one line (the last on stderr;
    info/progress lines may come before it). Returns that line."""
    err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
    lines = err.strip().splitlines()
    assert proc.returncode == 2, f"exit {proc.returncode}: {err[-1500:]}"
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0], err[-1500:]
    assert contains in errors[0], errors[0]
    return errors[0]
