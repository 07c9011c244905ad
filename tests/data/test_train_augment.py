"""Pipeline.train_augment with the modern-recipe additions: order, defaults unchanged, progressive sizes."""
import dataclasses

import pytest
import torch

from reslab import ReslabError
from reslab.data import transforms as T
from reslab.data.autoaugment import trivial_augment
from reslab.data.erasing import random_erasing
from reslab.data.pipeline import Pipeline
from reslab.data.preprocessing import InputConfig
from reslab.training.config import build_config

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _pipe(kind, crop=32, size=40, **data):
    p = Pipeline(InputConfig(crop, max(size, crop), mean=MEAN, std=STD), kind)
    if data:
        p.configure(build_config("default", {f"data.{k}": v for k, v in data.items()}).data)
    return p


def _x(n=8, size=40):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _g(seed=3):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", ["cifar", "rrc", "scale", "whole", "none"])
def test_defaults_add_nothing(kind):
    x = _x(size=32 if kind == "whole" else 40)
    p = _pipe(kind)
    g = _g()
    out = p.train_augment(x, g)
    if kind == "rrc":
        ref = T.random_resized_crop(T.normalize(x, MEAN, STD), _g(), 32)
    elif kind == "cifar":
        ref = T.center_crop(T.normalize(T.random_crop_flip(x, _g(), pad=5), MEAN, STD), 32)
    elif kind == "scale":
        ref = T.scale_augment(T.normalize(x, MEAN, STD), _g(), 32, shorter=(36, 68))
    else:
        ref = T.center_crop(T.normalize(x, MEAN, STD), 32)
    assert torch.equal(out, ref)
    probe = _g()
    p.train_augment(x, probe)
    assert torch.equal(probe.get_state(), g.get_state())  # the same numbers drawn as before


def test_order_crop_then_trivial_on_uint8_then_normalise_then_erase():
    x = _x()
    p = _pipe("rrc", auto_augment="trivial", random_erasing=0.5, erasing_mode="const")
    out = p.train_augment(x, _g())
    g = _g()
    crop = T.random_resized_crop(x.float(), g, 32).round_().clamp_(0, 255).to(torch.uint8)
    ref = random_erasing(T.normalize(trivial_augment(crop, g), MEAN, STD), g, 0.5, "const")
    assert torch.equal(out, ref)
    assert torch.equal(out, p.train_augment(x, _g()))  # reproducible from the generator alone


def test_cifar_and_whole_paths_with_randaugment():
    for kind, size in (("cifar", 40), ("whole", 32)):
        out = _pipe(kind, auto_augment="randaugment", randaugment_n=3, randaugment_m=15).train_augment(_x(size=size), _g())
        assert out.shape == (8, 3, 32, 32) and out.dtype == torch.float32


@pytest.mark.parametrize("kind", ["rrc", "scale", "cifar", "whole"])
def test_progressive_sizes_follow_the_epoch(kind):
    p = _pipe(kind, crop=32, progressive=16, progressive_start=1, progressive_end=3)
    x = _x(size=32 if kind == "whole" else 40)
    sizes = []
    for epoch in range(5):
        p.set_epoch(epoch)
        sizes.append(p.train_augment(x, _g()).shape[-1])
        assert sizes[-1] == p.size_at(epoch)
    assert sizes == [16, 16, 32, 32, 32] or sizes == [16, 16, 16, 32, 32]
    assert sizes[0] == 16 and sizes[-1] == 32


def test_extras_are_shared_with_replaced_pipelines():
    p = _pipe("rrc")
    q = dataclasses.replace(p, preprocess=dataclasses.replace(p.preprocess, mean=(0.0, 0.0, 0.0)))  # as fine-tuning
    p.configure(build_config("default", {"data.progressive": 16, "data.progressive_end": 2}).data)
    p.set_epoch(0)
    assert q.size_at(q.extras.epoch) == 16 and q.extras is p.extras


def test_progressive_larger_than_the_crop_is_a_one_line_error():
    with pytest.raises(ReslabError, match="data.progressive=64 is larger than the training crop"):
        _pipe("rrc", crop=32, progressive=64, progressive_end=2)
