"""`--weights` / `weights=` resolved, whatever the user wrote: a file, a checkpoint or run folder, or
a pretrained set's name. What the set knows (architecture, preprocessing, class names, licence)
travels in the returned Checkpoint's metadata, exactly where a reslab checkpoint keeps it, so every
command uses it without knowing where the weights came from."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ReslabError
from ..models.weights import Checkpoint, read_checkpoint, resolve_weights
from .download import fetch_hf, fetch_url
from .registry import WeightSet, find_weights, split_name

log = logging.getLogger(__name__)


@dataclass
class Opened:
    checkpoint: Checkpoint
    path: Path                     # the file read (in a cache for named sets)
    weight_set: WeightSet | None   # None for plain files


def open_checkpoint(spec: str | os.PathLike, model: str | None = None, progress: bool = True) -> Opened:
    """Read the weights `spec` names. Existing paths win over names; a name is resolved for `model`
    when it does not say its architecture itself ("tv2", "akamaster")."""
    text = str(spec)
    if Path(text).exists():
        try:
            path = resolve_weights(text)
        except ReslabError:  # e.g. `--weights reslab` run inside a reslab checkout: the name wins over a
            if not _names_weights(text, model):  # folder that holds no weights
                raise
        else:
            return Opened(read_checkpoint(path), path, None)
    ws = find_weights(text, model)
    if ws is None and text.startswith("hf-hub:"):
        return _open_unknown_hub(text[len("hf-hub:"):], model)
    if ws is None:
        path = resolve_weights(text)  # raises: no such file, and not a known name
        return Opened(read_checkpoint(path), path, None)
    if model and ws.arch != model:
        raise ReslabError(f"weights {ws.name} are for {ws.arch}, not {model}")
    path = fetch(ws, progress=progress, revision=_revision(text))
    ckpt = read_checkpoint(path)
    if ckpt.config is None:  # a third-party state dict: say what it is, as a reslab checkpoint would
        ckpt.metadata.update(describe(ws))
    if ws.non_commercial:
        log.warning("%s is licensed %s: non-commercial use only", ws.name, ws.license)
    return Opened(ckpt, path, ws)


def fetch(ws: WeightSet, progress: bool = True, revision: str | None = None) -> Path:
    """The verified local file of a set: shipped with reslab, from the Hub when huggingface_hub is
    installed (as timm does), else from its URL through torch.hub's cache."""
    if ws.url.startswith("package:"):
        path = Path(str(resources.files("reslab.hub").joinpath(ws.url[len("package:"):])))
        from .download import check_hash
        check_hash(path, ws.sha256, f"the shipped weights {path}")
        return path
    if ws.hf_hub and (not ws.url or _has_huggingface_hub()):
        return fetch_hf(ws.hf_hub, revision=revision)
    if not ws.url:
        raise ReslabError(f"{ws.name} has no download address")
    return fetch_url(ws.url, ws.sha256, ws.file_name, progress=progress)


def describe(ws: WeightSet) -> dict[str, str]:
    """Checkpoint metadata for a named set (JSON strings, as reslab writes them)."""
    from .classes import class_names
    pre = ws.preprocess
    return {"model": ws.arch, "model_args": json.dumps(ws.model_args), "classes": json.dumps(class_names(ws.classes)),
            "preprocess": json.dumps({"mean": pre["mean"], "std": pre["std"], "image_size": pre["resize"],
                                      "crop": pre["crop"], "interpolation": pre.get("interpolation", "bilinear")}),
            "weights_set": ws.name, "license": ws.license}


def _has_huggingface_hub() -> bool:
    import importlib.util
    return importlib.util.find_spec("huggingface_hub") is not None


def _revision(spec: str) -> str | None:
    return spec.split("@", 1)[1] if spec.startswith("hf-hub:") and "@" in spec else None


def _open_unknown_hub(repo: str, model: str | None) -> Opened:
    """A Hub id the registry does not know: read its safetensors, with ImageNet defaults unless the
    repository's config.json (timm's pretrained_cfg) says otherwise."""
    repo_id, _, revision = repo.partition("@")
    arch = model or (split_name(repo_id.rsplit("/", 1)[-1]) or (None, None))[0]
    if arch is None:
        raise ReslabError(f"hf-hub:{repo_id}: which architecture is it? pass --model NAME (model=...)")
    path = fetch_hf(repo_id, revision=revision or None)
    ckpt = read_checkpoint(path)
    cfg = _hub_config(repo_id, revision or None)
    pre = cfg.get("pretrained_cfg", {})
    size = int((pre.get("input_size") or [3, 224, 224])[-1])
    crop_pct = float(pre.get("crop_pct") or 0.875)
    ws = WeightSet(arch=arch, tag=repo_id.rsplit(".", 1)[-1], source="hf-hub", hf_hub=repo_id,
                   preprocess={"resize": int(size / crop_pct), "crop": size,
                               "interpolation": pre.get("interpolation", "bilinear"),
                               "mean": list(pre.get("mean") or (0.485, 0.456, 0.406)),
                               "std": list(pre.get("std") or (0.229, 0.224, 0.225))},
                   license=str(cfg.get("license", "")))
    if ckpt.config is None:
        ckpt.metadata.update({k: v for k, v in describe(ws).items() if k != "classes"})
        if int(cfg.get("num_classes", 0)) == 1000:
            from .classes import class_names
            ckpt.metadata["classes"] = json.dumps(class_names("imagenet1k"))
    return Opened(ckpt, path, ws)


def _hub_config(repo_id: str, revision: str | None) -> dict:
    try:
        import huggingface_hub
        return json.loads(Path(huggingface_hub.hf_hub_download(repo_id, "config.json", revision=revision)).read_text())
    except Exception:  # noqa: BLE001 - no config.json: defaults
        return {}


def _names_weights(text: str, model: str | None) -> bool:
    """Whether `text` is a registered weights name (an ambiguous one counts as not)."""
    try:
        return find_weights(text, model) is not None
    except ReslabError:
        return False
