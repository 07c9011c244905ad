"""One pretrained weight set: where it lives, how to check it, how it was evaluated, its terms."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from ..data.preprocessing import InputConfig
from .classes import class_names

NON_COMMERCIAL = re.compile(r"(^|-)nc($|-)")


@dataclass(frozen=True)
class WeightSet:
    """One pretrained weight set: where it lives, how to check it, how it was evaluated, its terms."""

    arch: str
    tag: str
    source: str
    url: str = ""
    hf_hub: str = ""                 # "timm/resnet50.a1_in1k": fetched with huggingface_hub when installed
    sha256: str = ""                 # full hash, or the published prefix
    top1: float | None = None        # % on eval_data, with `preprocess`
    top5: float | None = None
    eval_data: str = ""
    preprocess: InputConfig | dict[str, Any] = field(default_factory=dict)  # a dict (resize, crop, ...) becomes one
    classes: str = "imagenet1k"      # a class list of reslab.hub.classes
    license: str = ""
    aliases: tuple[str, ...] = ()
    default: bool = False            # what pretrained=True loads for `arch`
    model_args: dict[str, Any] = field(default_factory=dict)
    read_from: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.preprocess, InputConfig):  # the registry's YAML form: resize, crop, interpolation, ...
            pre = dict(self.preprocess or {})
            object.__setattr__(self, "preprocess", InputConfig.from_dict(pre, input_size=224, resize=256))

    @property
    def name(self) -> str:
        return f"{self.arch}.{self.tag}"

    def input_config(self) -> InputConfig:
        """The set's preprocessing with its class names."""
        return dataclasses.replace(self.preprocess, classes=tuple(class_names(self.classes)))

    @property
    def file_name(self) -> str:
        return urlparse(self.url).path.rsplit("/", 1)[-1] if self.url else f"{self.name}.safetensors"

    @property
    def non_commercial(self) -> bool:
        return bool(NON_COMMERCIAL.search(self.license.lower()))

    @property
    def num_classes(self) -> int:
        return len(class_names(self.classes))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["preprocess"] = {**self.preprocess.to_dict(), "crop_pct": round(self.preprocess.crop_pct, 4)}
        d.update(name=self.name, aliases=list(self.aliases), num_classes=self.num_classes,
                 non_commercial=self.non_commercial)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WeightSet":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if k == "aliases" else v) for k, v in d.items() if k in known})
