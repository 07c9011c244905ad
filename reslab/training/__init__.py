"""Training engine: recipes, the loop, checkpoints, evaluation, DDP."""
from .config import TrainConfig, build_config, list_recipes
from .trainer import Interrupted, RunResult, train

__all__ = ["TrainConfig", "build_config", "list_recipes", "train", "RunResult", "Interrupted"]
