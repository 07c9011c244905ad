"""Loading and saving weights: reslab's own safetensors, torchvision/timm state dicts (.pth or
.safetensors) and the community CIFAR checkpoints (akamaster: `module.` prefix, `linear` head).

Nothing is ever unpickled beyond tensors and plain containers (`weights_only=True`).
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ReslabError
from ..utils.io import atomic_write

log = logging.getLogger(__name__)

FORMAT_KEY = "reslab_format"
FORMAT_VERSION = 2  # bump when an older reslab could misread a newer file (2: preprocess as InputConfig)
_NESTED = ("state_dict", "model", "model_state_dict", "module", "net")
_PREFIXES = ("module.", "_orig_mod.", "model.")
_RENAMES = {"linear.": "fc."}  # akamaster's CIFAR classifier


@dataclass
class Checkpoint:
    """Tensors in reslab/torchvision naming plus what is known of where they came from."""

    state_dict: dict[str, torch.Tensor]
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any] | None:
        """The model config reslab recorded (None for torchvision/timm/community files)."""
        return self._json("config")

    @property
    def model_name(self) -> str | None:
        return self.metadata.get("model") or None

    @property
    def model_args(self) -> dict[str, Any]:
        """reslab options a named third-party set needs to fit (e.g. shortcut B for chenyaofo's nets)."""
        return self._json("model_args") or {}

    @property
    def classes(self) -> list[str] | None:
        return self._json("classes")

    @property
    def preprocess(self) -> dict[str, Any]:
        """Evaluation preprocessing recorded by training (mean, std, image_size, crop); {} when unknown."""
        return self._json("preprocess") or {}

    @property
    def train_config(self) -> dict[str, Any] | None:
        """The resolved training config of the run that wrote this checkpoint (nested sections)."""
        raw = self.metadata.get("train_config")
        if not isinstance(raw, str):
            return None
        import yaml
        try:
            cfg = yaml.safe_load(raw)
        except yaml.YAMLError:
            return None
        return cfg if isinstance(cfg, dict) else None

    def _json(self, key: str) -> Any:
        raw = self.metadata.get(key)
        if not isinstance(raw, str):
            return raw
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise ReslabError(f"checkpoint metadata {key!r} is not valid JSON ({self.source})") from None


def resolve_weights(path: str | os.PathLike) -> Path:
    """A weights file, a checkpoint folder, or a run folder (-> its best, else last checkpoint)."""
    p = Path(path)
    for candidate in (p, p / "model.safetensors", p / "checkpoints" / "best" / "model.safetensors",
                      p / "checkpoints" / "last" / "model.safetensors"):
        if candidate.is_file():
            return candidate
    raise ReslabError(f"no weights at {path} (a .safetensors/.pth/.th file, a checkpoint folder or a run folder)")


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read any supported weights file; one-line ReslabError on anything unreadable or unsafe."""
    path = Path(path)
    if not path.is_file():
        raise ReslabError(f"weights file not found: {path}")
    if path.stat().st_size == 0:
        raise ReslabError(f"weights file is empty: {path}")
    if _is_safetensors(path):
        tensors, meta = _read_safetensors(path)
        source = "reslab" if meta.get(FORMAT_KEY) else "safetensors state dict"
        _check_format(path, meta)
    else:
        tensors, meta, source = _read_torch(path)
    state, renamed = _normalise_keys(tensors)
    if renamed and source == "torch state dict":
        source = "community CIFAR checkpoint (module./linear naming)"
    return Checkpoint(state, source, meta)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a safetensors file alone (its header: no tensor is read)."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # noqa: BLE001 - corrupt or truncated header
        raise ReslabError(f"{path} is not a readable safetensors file (corrupt or truncated?): {_first_line(e)}") from None


def _check_format(path: Path, meta: dict[str, str]) -> None:
    version = meta.get(FORMAT_KEY)
    if version is None:
        return
    try:
        newer = int(version) > FORMAT_VERSION
    except ValueError:
        raise ReslabError(f"{path}: unrecognised reslab format version {version!r}") from None
    if newer:
        raise ReslabError(f"{path} was written by a newer reslab (format {version}; this one reads up to "
                          f"{FORMAT_VERSION}): upgrade reslab (pip install -U reslab)")


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 30)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types on corrupt headers / truncation
        raise ReslabError(f"{path} is not a readable safetensors file (corrupt or truncated?): {_first_line(e)}") from None
    return tensors, meta


def _read_torch(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" (it names {found.group(1)})" if found else ""
        raise ReslabError(f"refusing to load {path}: it holds Python objects other than tensors{what}, and unpickling "
                          f"them can run arbitrary code; reslab only reads tensors (torch.load with weights_only=True). "
                          f"If you trust the file, re-save its state dict with torch.save(model.state_dict(), ...) "
                          f"or as safetensors") from None
    except Exception as e:  # noqa: BLE001 - any decoding failure of an untrusted file (KeyError, EOFError, ...)
        raise ReslabError(f"{path} is not a readable PyTorch checkpoint (corrupt or truncated?): {_first_line(e)}") from None
    meta: dict[str, Any] = {}
    if isinstance(obj, dict):
        for key in _NESTED:
            if isinstance(obj.get(key), dict):
                meta = {k: v for k, v in obj.items() if k != key and isinstance(v, (int, float, str))}
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ReslabError(f"{path} holds no state dict (found {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ReslabError(f"{path}: entries {bad[:5]} are not tensors; expected a state dict")
    return obj, meta, "torch state dict"


def _normalise_keys(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    out, renamed = {}, False
    for key, value in tensors.items():
        k = key
        for prefix in _PREFIXES:
            if k.startswith(prefix):
                k = k[len(prefix):]
        for old, new in _RENAMES.items():
            if k.startswith(old):
                k, renamed = new + k[len(old):], True
        out[k] = value
    return out, renamed


# ----------------------------------------------------------------------------------------- applying
def load_into(model: nn.Module, ckpt: Checkpoint, *, new_head: bool = False, adapt_in_chans: bool = False,
              name: str = "model") -> None:
    """Copy `ckpt` into `model`, or fail with a one-line diff (missing / unexpected / wrong shape).

    new_head: the classifier may differ in shape (a new num_classes); it keeps its fresh init.
    adapt_in_chans: conv1 may differ in input channels; its weights are summed or tiled (as timm).
    """
    own = model.state_dict()
    state = dict(ckpt.state_dict)
    # Checkpoints from old PyTorch versions lack BN counters; they carry no information.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    first_conv = "conv1.0.weight" if "conv1.0.weight" in own else "conv1.weight"  # a deep stem's first conv
    if adapt_in_chans and first_conv in wrong:
        state[first_conv] = _adapt_input_conv(state[first_conv], own[first_conv].shape[1])
        wrong.remove(first_conv)
    if new_head and any(k.startswith("fc.") for k in wrong + missing + unexpected):
        if any(k.startswith("fc.") for k in wrong):
            log.info("the checkpoint's classifier has another shape: the model keeps its freshly initialised head")
        for k in [k for k in state if k.startswith("fc.")]:
            state.pop(k)
        wrong = [k for k in wrong if not k.startswith("fc.")]
        missing = [k for k in missing if not k.startswith("fc.")]
        unexpected = [k for k in unexpected if not k.startswith("fc.")]
    if missing or unexpected or wrong:
        _refuse_other_layout(model, state, ckpt.source, name)
        raise ReslabError(f"weights ({ckpt.source}) do not fit {name}: " + describe_mismatch(missing, unexpected, wrong, state, own))
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v.to(own[k].dtype))


def _refuse_other_layout(model: nn.Module, state: dict[str, torch.Tensor], source: str, name: str) -> None:
    """One line for weights of another ResNet layout: what they are, and which preset or options fit them."""
    from .layouts import describe_variant, layout_name, recognise_foreign_layout, stem_and_shortcut, suggest_model
    foreign = recognise_foreign_layout(state)
    if foreign:
        raise ReslabError(f"weights ({source}) are {foreign}: not the torchvision ResNet layout reslab builds, "
                          f"so they cannot load into {name}")
    cfg = getattr(model, "cfg", None)
    theirs = stem_and_shortcut(state)
    mine = {"stem_type": getattr(cfg, "stem_type", ""), "avg_down": getattr(cfg, "avg_down", False)}
    if {k: bool(v) for k, v in theirs.items()} != {k: bool(v) for k, v in mine.items()}:
        raise ReslabError(f"weights ({source}) are {describe_variant(theirs)}: not {layout_name(mine)} {name} has; "
                          f"{suggest_model(state, cfg)}")


def describe_mismatch(missing: list[str], unexpected: list[str], wrong: list[str],
                      state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> str:
    def head(keys: list[str], fmt=lambda k: k) -> str:
        shown = ", ".join(fmt(k) for k in keys[:4])
        return shown + (f", +{len(keys) - 4} more" if len(keys) > 4 else "")

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({head(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({head(unexpected)})")
    if wrong:
        parts.append(f"{len(wrong)} wrong shape ({head(wrong, lambda k: f'{k}: checkpoint {list(state[k].shape)} vs model {list(own[k].shape)}')})")
    hint = ""
    if wrong and all(k.startswith("fc.") for k in wrong) and not missing and not unexpected:
        hint = "; only the classifier differs: pass num_classes matching the checkpoint, or new_head=True"
    return "; ".join(parts) + hint


def _adapt_input_conv(w: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Sum (1 channel) or tile and rescale RGB filters, in fp32 whatever the checkpoint's dtype, as timm does;
    the result is rounded once, to the model's dtype when it is copied in (timm rounds back to the checkpoint's)."""
    w = w.float()
    if in_chans == 1:
        return w.sum(dim=1, keepdim=True)
    reps = -(-in_chans // w.shape[1])
    return w.repeat(1, reps, 1, 1)[:, :in_chans] * (w.shape[1] / in_chans)


# ----------------------------------------------------------------------------------------- saving
def save_weights(model: nn.Module, path: str | os.PathLike, *, name: str = "", extra: dict[str, Any] | None = None) -> None:
    """Write model weights as safetensors with the config needed to rebuild the model (atomically)."""
    from safetensors.torch import save_file
    cfg = getattr(model, "cfg", None)
    meta = {FORMAT_KEY: str(FORMAT_VERSION), "model": name}
    if cfg is not None:
        meta["config"] = json.dumps(cfg.to_dict())
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
