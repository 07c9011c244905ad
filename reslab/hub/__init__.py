"""Pretrained weights by name: torchvision's, timm's and the CIFAR community's (and reslab's own),
downloaded through torch.hub / huggingface_hub, verified by sha256, cached, with their model cards."""
from .classes import class_names
from .open import Opened, open_checkpoint
from .registry import default_weights, find_weights, list_weights, register_weights, unregister_weights
from .weight_set import WeightSet

__all__ = ["WeightSet", "list_weights", "find_weights", "default_weights", "register_weights", "unregister_weights",
           "open_checkpoint", "Opened", "class_names"]
