"""Measurements of trained or initial networks: gradient flow, gradient shattering, layer responses."""
from .gradients import block_gradient_norms, gradient_correlation
from .responses import layer_responses

__all__ = ["block_gradient_norms", "gradient_correlation", "layer_responses"]
