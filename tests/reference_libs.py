"""torchvision and timm as test references only (reslab never imports them): imported with
`torch.library.register_fake` neutralised (their fake-kernel registrations clash with this torch build),
the test skipped cleanly when they are not importable."""
from __future__ import annotations

import pytest
import torch


def _import(name: str):
    orig = torch.library.register_fake
    torch.library.register_fake = lambda *a, **k: (lambda f: f)
    try:
        import importlib
        return importlib.import_module(name)
    except Exception as e:  # ImportError, or a version clash surfacing as another error at import time
        pytest.skip(f"{name} is not importable here ({type(e).__name__}: {e}); it is only a test reference")
    finally:
        torch.library.register_fake = orig


def tv_functional():
    """torchvision.transforms.v2.functional (skips the test when torchvision is absent)."""
    _import("torchvision")
    return _import("torchvision.transforms.v2.functional")


def tv_transforms():
    _import("torchvision")
    return _import("torchvision.transforms.v2")


def timm_mixup():
    """timm.data.mixup (skips the test when timm is absent)."""
    _import("torchvision")  # timm imports torchvision
    return _import("timm.data.mixup")


def torchvision():
    """The torchvision package (skips the test when it is absent)."""
    return _import("torchvision")


def timm():
    """The timm package (skips the test when it is absent)."""
    _import("torchvision")  # timm imports torchvision
    return _import("timm")
