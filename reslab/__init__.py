"""reslab: residual networks (He et al. 2015, 2016), faithful to the papers, fast, pleasant to use."""
from .errors import ReslabError
from .models import (Backbone, ResNet, ResNetConfig, create_backbone, create_model, list_models, load_model,
                     read_checkpoint, save_weights)

__version__ = "0.1.0"
__all__ = ["ReslabError", "ResNet", "ResNetConfig", "Backbone", "create_model", "create_backbone", "load_model",
           "list_models", "read_checkpoint", "save_weights", "__version__"]
