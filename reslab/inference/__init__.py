"""Using trained networks: load a checkpoint with its preprocessing, predict, extract features."""
from .features import extract_features, save_features
from .images import list_images, load_images
from .predict import predict
from .spec import InferenceModel, load_inference_model

__all__ = ["InferenceModel", "load_inference_model", "list_images", "load_images", "predict", "extract_features",
           "save_features"]
