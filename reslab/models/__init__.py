"""Every residual network of the ResNet papers, built from one config-driven class. This package knows
nothing of the weights registry (reslab/hub) or of data: `reslab.create_model` joins them."""
from .config import ResNetConfig
from .factory import Backbone, build_model, load_model, model_from_checkpoint
from .registry import PRESETS, list_models, model_config
from .resnet import ResNet
from .weights import read_checkpoint, save_weights

__all__ = ["ResNetConfig", "ResNet", "Backbone", "build_model", "load_model", "model_from_checkpoint",
           "list_models", "model_config", "PRESETS", "read_checkpoint", "save_weights"]
