"""Training: the loop, learning-rate schedule, EMA and strategies."""

from gflow.train.ema import EMA
from gflow.train.schedule import WarmupExponentialDecay
from gflow.train.strategy import STRATEGIES, make_strategy
from gflow.train.trainer import Trainer, TrainingDiverged, build_model, load_run

__all__ = ["EMA", "STRATEGIES", "Trainer", "TrainingDiverged", "WarmupExponentialDecay",
           "build_model", "load_run", "make_strategy"]
