"""Training engine: recipes, the loop, checkpoints, evaluation, DDP."""
from .config import TrainConfig, build_config, list_recipes
from .report import RunResult
from .trainer import Interrupted, resume_config, train

__all__ = ["TrainConfig", "build_config", "list_recipes", "train", "resume_config", "RunResult", "Interrupted"]
