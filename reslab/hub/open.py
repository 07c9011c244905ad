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

from ..data.preprocessing import InputConfig
from ..errors import ReslabError
from ..models.config import ResNetConfig
from ..models.weights import Checkpoint, read_checkpoint, resolve_weights
from .download import fetch_hf, fetch_url
from .registry import WeightSet, find_weights, split_name

log = logging.getLogger(__name__)


@dataclass
class Opened:
    checkpoint: Checkpoint
    path: Path                     # the file read (in a cache for named sets)
    weight_set: WeightSet | None   # None for plain files

    def input_config(self, net: ResNetConfig | None = None) -> InputConfig:
        return checkpoint_input(self.checkpoint, net)


def checkpoint_input(ckpt: Checkpoint, net: ResNetConfig | None = None) -> InputConfig:
    """How a checkpoint's weights expect their input: what it (or its named set) records; where nothing is
    recorded (a bare torchvision/timm state dict), ImageNet's 256 -> 224, or 32 x 32 for CIFAR nets."""
    small = net is not None and net.stem == "cifar"
    return InputConfig.from_dict(ckpt.preprocess, classes=ckpt.classes or (), input_size=32 if small else 224,
                                 resize=32 if small else 256)


def open_checkpoint(spec: str | os.PathLike, model: str | None = None, progress: bool = True) -> Opened:
    """Read the weights `spec` names. Existing paths win over names; a name is resolved for `model`
    when it does not say its architecture itself ("tv2", "akamaster")."""
    text = str(spec)
    if Path(text).exists():
        try:
            path = resolve_weights(text)
        except ReslabError:  # e.g. `--weights reslab` run inside a reslab checkout: the name wins over a
            if not names_weights(text, model):  # folder that holds no weights
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
    """The local file of a set, verified against the registry's sha256 however it arrives: shipped with
    reslab, or the publisher's release file through torch.hub's cache. A set named by its Hub id
    (hf-hub:timm/...) arrives the same way: the Hub's converted copy has no hash in the registry, and a
    file that cannot be checked is never loaded for a registered name."""
    if ws.url.startswith("package:"):
        path = Path(str(resources.files("reslab.hub").joinpath(ws.url[len("package:"):])))
        from .download import check_hash
        check_hash(path, ws.sha256, f"the shipped weights {path}")
        return path
    if ws.url:
        return fetch_url(ws.url, ws.sha256, ws.file_name, progress=progress)
    if ws.hf_hub and ws.sha256:
        return fetch_hf(ws.hf_hub, sha256=ws.sha256, revision=revision)[0]
    raise ReslabError(f"{ws.name} has neither a release URL nor a pinned sha256 for its Hub copy: it cannot be verified")


def describe(ws: WeightSet) -> dict[str, str]:
    """Checkpoint metadata for a named set (JSON strings, as reslab writes them)."""
    from .classes import class_names
    pre = ws.preprocess
    return {"model": ws.arch, "model_args": json.dumps(ws.model_args), "classes": json.dumps(class_names(ws.classes)),
            "preprocess": json.dumps(pre.to_dict()), "weights_set": ws.name, "license": ws.license}


def _revision(spec: str) -> str | None:
    return spec.split("@", 1)[1] if spec.startswith("hf-hub:") and "@" in spec else None


def _open_unknown_hub(repo: str, model: str | None) -> Opened:
    """A Hub id the registry does not know: read its safetensors, with ImageNet defaults unless the
    repository's config.json (timm's pretrained_cfg) says otherwise."""
    repo_id, _, revision = repo.partition("@")
    arch = model or (split_name(repo_id.rsplit("/", 1)[-1]) or (None, None))[0]
    if arch is None:
        raise ReslabError(f"hf-hub:{repo_id}: which architecture is it? pass --model NAME (model=...)")
    path, verified = fetch_hf(repo_id, revision=revision or None)
    if not verified:
        log.warning("hf-hub:%s is not in reslab's registry and its cached file carries no hash to check it against "
                    "(a cache without symlinks): loading it unverified", repo_id)
    ckpt = read_checkpoint(path)
    cfg = _hub_config(repo_id, revision or None)
    pre = InputConfig.from_dict({"crop_pct": 0.875, **cfg.get("pretrained_cfg", {})}, input_size=224)  # timm's keys
    ws = WeightSet(arch=arch, tag=repo_id.rsplit(".", 1)[-1], source="hf-hub", hf_hub=repo_id, preprocess=pre,
                   license=str(cfg.get("license", "")))
    if ckpt.config is None:
        ckpt.metadata.update({k: v for k, v in describe(ws).items() if k != "classes"})
        if int(cfg.get("num_classes", 0)) == 1000:
            from .classes import class_names
            ckpt.metadata["classes"] = json.dumps(class_names("imagenet1k"))
    return Opened(ckpt, path, ws)


def _hub_config(repo_id: str, revision: str | None) -> dict:
    try:
        return json.loads(fetch_hf(repo_id, revision=revision, filename="config.json")[0].read_text())
    except (ReslabError, OSError, ValueError):  # no config.json: defaults
        return {}


def names_weights(text: str, model: str | None) -> bool:
    """Whether `text` is a registered weights name (an ambiguous one counts as not)."""
    try:
        return find_weights(text, model) is not None
    except ReslabError:
        return False
