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
