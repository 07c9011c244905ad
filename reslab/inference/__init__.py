"""Using trained networks: load a checkpoint with its preprocessing, predict, extract features."""
from .cam import class_activation_maps, grad_cam, write_cams
from .features import extract_features, save_features
from .images import list_images, load_images
from .predict import predict
from .spec import InferenceModel, load_inference_model

__all__ = ["class_activation_maps", "grad_cam", "write_cams", "InferenceModel", "load_inference_model", "list_images", "load_images", "predict", "extract_features",
           "save_features"]
