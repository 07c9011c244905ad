"""The papers' experiments as data (which nets, which recipe) plus a runner and a report."""
from .definitions import BUDGETS, EXPERIMENTS
from .runner import run_experiment

__all__ = ["EXPERIMENTS", "BUDGETS", "run_experiment"]
