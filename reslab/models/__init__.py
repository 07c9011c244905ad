"""Every residual network of the ResNet papers, built from one config-driven class."""
from .config import ResNetConfig
from .factory import Backbone, create_backbone, create_model, load_model
from .registry import PRESETS, list_models, model_config
from .resnet import ResNet
from .weights import read_checkpoint, save_weights

__all__ = ["ResNetConfig", "ResNet", "Backbone", "create_model", "create_backbone", "load_model",
           "list_models", "model_config", "PRESETS", "read_checkpoint", "save_weights"]
