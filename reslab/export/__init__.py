"""Deployment: BatchNorm folding, export to ONNX / TorchScript / torch.export, checked against eager
PyTorch on real images, and int8 post-training quantisation (ONNX Runtime)."""
from .fold import fold_batchnorm
from .formats import FORMATS, export_model, load_exported
from .verify import VerifyReport, compare_outputs

__all__ = ["fold_batchnorm", "FORMATS", "export_model", "load_exported", "VerifyReport", "compare_outputs"]
