"""Every pretrained weight set reslab knows by name, read from weights.yaml (data, not code).

A set is named `arch.tag` (timm's convention: "resnet50.tv2_in1k", "resnet50.a1_in1k",
"resnet20.akamaster") and may have aliases valid for its architecture ("tv2",
"torchvision:IMAGENET1K_V2", "akamaster"). `find_weights(spec, arch)` turns any of those, and
"hf-hub:timm/<arch>.<tag>", into the set.
"""
from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

import yaml

from ..data.types import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ReslabError, choices_hint
from .shipped import shipped_weight_sets
from .weight_set import WeightSet

HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.")  # torch.hub: "resnet18-f37072fd.pth" -> f37072fd


_ENTRY_ONLY = {"arch", "tag", "file", "url", "sha256", "top1", "top5", "aliases", "default", "resize", "crop",
               "interpolation", "mean", "std", "test_size", "test_resize", "classes", "eval_data", "notes", "model_args"}


def _expand(group: dict[str, Any], entry: dict[str, Any]) -> WeightSet:
    unknown = set(entry) - _ENTRY_ONLY
    if unknown:
        raise ValueError(f"weights.yaml: unknown entry fields {sorted(unknown)} in {entry}")
    pre = dict(group.get("preprocess", {}))
    pre.update({k: entry[k] for k in ("resize", "crop", "interpolation", "mean", "std", "test_size", "test_resize")
                if k in entry})
    pre["test_input_size"] = pre.pop("test_size", 0)
    pre["mean"] = list(IMAGENET_MEAN) if pre.get("mean") == "imagenet" else pre.get("mean")
    pre["std"] = list(IMAGENET_STD) if pre.get("std") == "imagenet" else pre.get("std")
    url = entry.get("url") or (group["url_base"] + entry["file"] if "file" in entry else "")
    sha = entry.get("sha256") or (HASH_IN_NAME.search(url.rsplit("/", 1)[-1]).group(1) if url else "")
    hf = group.get("hf_hub", "").format(arch=entry["arch"], tag=entry["tag"])
    return WeightSet(arch=entry["arch"], tag=entry["tag"], source=group["source"], url=url, hf_hub=hf, sha256=sha,
                     top1=entry.get("top1"), top5=entry.get("top5"),
                     eval_data=entry.get("eval_data", group.get("eval_data", "")), preprocess=pre,
                     classes=entry.get("classes", group.get("classes", "imagenet1k")),
                     license=group.get("license", ""), aliases=tuple(entry.get("aliases", ())),
                     default=bool(entry.get("default", False)),
                     model_args={**group.get("model_args", {}), **entry.get("model_args", {})},
                     read_from=group.get("read_from", ""), notes=entry.get("notes", group.get("notes", "")))


@functools.lru_cache(maxsize=1)
def _builtin() -> tuple[WeightSet, ...]:
    data = yaml.safe_load(resources.files("reslab.hub").joinpath("weights.yaml").read_text())
    return tuple(_expand(g, e) for g in data["groups"] for e in g["entries"]) + tuple(shipped_weight_sets())


_EXTRA: list[WeightSet] = []


def register_weights(ws: WeightSet) -> WeightSet:
    """Add a set at run time (private weights, tests); it wins over a built-in set of the same name."""
    _EXTRA.insert(0, ws)
    return ws


def unregister_weights(name: str) -> None:
    _EXTRA[:] = [w for w in _EXTRA if w.name != name]


def all_weights() -> list[WeightSet]:
    seen, out = set(), []
    for ws in [*_EXTRA, *_builtin()]:
        if ws.name not in seen:
            seen.add(ws.name)
            out.append(ws)
    return out


def list_weights(model: str | None = None) -> list[WeightSet]:
    """Every known set, or those for one architecture (a preset name such as "resnet50")."""
    sets = all_weights()
    return [w for w in sets if model is None or w.arch == model]


def default_weights(arch: str) -> WeightSet:
    """The set `pretrained=True` loads for `arch` (see docs/pretrained.md for the choice per family)."""
    sets = list_weights(arch)
    chosen = [w for w in sets if w.default] or sets[:1]
    if not chosen:
        raise ReslabError(f"no pretrained weights are known for {arch!r}; `reslab weights` lists the sets")
    return chosen[0]


def torchvision_default(spec: str, arch: str | None) -> WeightSet:
    """torchvision's `DEFAULT` weights of `arch`: its newest IMAGENET1K_Vn set."""
    if arch is None:
        raise ReslabError(f"weights {spec!r}: torchvision's DEFAULT depends on the architecture: pass --model NAME "
                          f"(create_model(NAME, weights={spec!r}))")
    versions = [(int(a.rsplit("_V", 1)[1]), w) for w in list_weights(arch) if w.source == "torchvision"
                for a in w.aliases if re.fullmatch(r"torchvision:IMAGENET1K_V\d+", a)]
    if not versions:
        raise ReslabError(f"torchvision publishes no weights for {arch}; `reslab weights {arch}` lists what there is")
    return max(versions, key=lambda v: v[0])[1]


def split_name(spec: str) -> tuple[str, str] | None:
    """"resnet50.a1_in1k" -> ("resnet50", "a1_in1k") when the part before the dot is an architecture."""
    from ..models.registry import PRESETS
    arch, dot, tag = spec.partition(".")
    return (arch, tag) if dot and arch in PRESETS and tag else None


def find_weights(spec: str, arch: str | None = None) -> WeightSet | None:
    """The registry set `spec` names (for `arch`, when the name alone does not say), or None when `spec`
    is not a registry name at all (a file path, say). A registry-looking name that matches nothing is
    a one-line error listing the sets there are."""
    sets = all_weights()
    if spec.startswith("hf-hub:"):
        repo = spec[len("hf-hub:"):].split("@")[0]
        found = [w for w in sets if w.hf_hub == repo]
        return found[0] if found else None  # an unknown Hub id: fetched as is (open.py)
    by_name = {w.name: w for w in sets}
    if spec in by_name:
        return by_name[spec]
    if spec.count(".") == 1 and "/" not in spec and split_name(spec):  # "resnet50.xyz": an unknown tag
        a, _ = split_name(spec)
        raise ReslabError(f"unknown weights {spec!r}; {choices_hint(spec, [w.name for w in list_weights(a)], limit=8)}")
    if "/" in spec or "\\" in spec or re.search(r"\.(pth?|th|bin|safetensors|ckpt|tar)$", spec):
        return None
    if spec.startswith(("ResNet", "ResNeXt", "Wide_")) and "_Weights." in spec:  # torchvision's enum spellings
        enum_arch = spec.split("_Weights.")[0].lower()  # ResNet50_Weights -> resnet50, Wide_ResNet50_2 -> wide_resnet50_2
        if arch is not None and enum_arch != arch:
            raise ReslabError(f"weights {spec} are torchvision's for {enum_arch}, not {arch}")
        spec, arch = spec.split(".")[-1], enum_arch
    name = spec
    name = f"torchvision:{name}" if re.fullmatch(r"IMAGENET1K_V\d", name) else name
    if name in ("DEFAULT", "torchvision:DEFAULT"):
        return torchvision_default(spec, arch)
    candidates = [w for w in sets if arch in (None, w.arch) and (name in w.aliases or name == w.tag)]
    if arch is None and len({w.arch for w in candidates}) > 1:
        raise ReslabError(f"weights {spec!r} exist for several architectures ({', '.join(sorted({w.arch for w in candidates}))}): "
                          f"pass --model NAME (or name the set in full, e.g. {candidates[0].name})")
    if candidates:
        return candidates[0]
    if re.fullmatch(r"[A-Za-z0-9_:\-]+", spec) and not spec.isdigit():
        known = sorted({a for w in (list_weights(arch) if arch else sets) for a in (w.tag, *w.aliases)})
        where = f" for {arch}" if arch else ""
        raise ReslabError(f"unknown weights {spec!r}{where} (not a file either); {choices_hint(spec, known, limit=8)}; "
                          f"`reslab weights {arch or ''}` lists them".rstrip())
    return None
