"""reslab: residual networks (He et al. 2015, 2016), faithful to the papers, fast, pleasant to use."""
from .api import create_backbone, create_model, input_config, load_model, transforms_for
from .data.preprocessing import ImageTransform, InputConfig
from .errors import ReslabError
from .hub import list_weights
from .models import Backbone, ResNet, ResNetConfig, list_models, read_checkpoint, save_weights
from .version import __version__

__all__ = ["ReslabError", "ResNet", "ResNetConfig", "Backbone", "create_model", "create_backbone", "load_model",
           "list_models", "list_weights", "read_checkpoint", "save_weights", "transforms_for", "input_config",
           "InputConfig", "ImageTransform", "__version__"]
