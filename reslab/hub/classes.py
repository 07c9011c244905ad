"""Class names of the data sets pretrained weights were trained on, in label order.

imagenet1k: torchvision's `_IMAGENET_CATEGORIES` (BSD-3-Clause, Copyright (c) Soumith Chintala 2016):
the Keras / pytorch-hub names with spaces for underscores and the two duplicate names told apart
(134 "crane bird" vs 517 "crane", 639 "maillot tank suit" vs 638 "maillot"); see
imagenet1k_classes-NOTICE.md. cifar10 / cifar100: the data sets' own label names (batches.meta).
"""
from __future__ import annotations

import functools
from importlib import resources

from ..errors import ReslabError

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100 = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can
castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant
flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree
motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel
streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale
willow_tree wolf woman worm""".split()


@functools.lru_cache(maxsize=None)
def _imagenet1k() -> tuple[str, ...]:
    text = resources.files("reslab.hub").joinpath("imagenet1k_classes.txt").read_text()
    return tuple(line for line in text.splitlines() if line)


def class_names(name: str) -> list[str]:
    lists = {"imagenet1k": lambda: list(_imagenet1k()), "cifar10": lambda: list(CIFAR10),
             "cifar100": lambda: list(CIFAR100)}
    if name not in lists:
        raise ReslabError(f"unknown class list {name!r}; known: {', '.join(lists)}")
    return lists[name]()


@functools.lru_cache(maxsize=None)
def imagenet_wnids() -> tuple[str, ...]:
    """The WordNet ids of ImageNet-1k in label order (the sorted folder names of an ImageNet tree)."""
    text = resources.files("reslab.hub").joinpath("imagenet1k_wnids.txt").read_text()
    return tuple(line for line in text.split() if line)


def readable(classes: list[str]) -> list[str]:
    """Class names for people: ImageNet WordNet-id folder names ("n01440764") as "tench (n01440764)"."""
    names = dict(zip(imagenet_wnids(), _imagenet1k()))
    return [f"{names[c]} ({c})" if c in names else c for c in classes]


def same_classes(model_classes: list[str], data_classes: list[str]) -> bool:
    """The same classes in the same order; an ImageNet tree's WordNet-id folders (sorted) match the
    ImageNet-1k names of the weights trained on it."""
    if model_classes == data_classes:
        return True
    return list(data_classes) == list(imagenet_wnids()) and list(model_classes) == list(_imagenet1k())
