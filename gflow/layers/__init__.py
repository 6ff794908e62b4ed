"""Keras 3 layers that own flow variables and build gflow bijectors from them."""

from gflow.layers.actnorm import ActNormLayer
from gflow.layers.base import FlowLayer, SequentialFlow, is_initialized
from gflow.layers.conv1x1 import Conv1x1Layer
from gflow.layers.coupling import CouplingLayer
from gflow.layers.factor_out import FactorOutLayer
from gflow.layers.learned_prior import LearnedPriorLayer
from gflow.layers.squeeze import SqueezeLayer

__all__ = [
    "ActNormLayer", "Conv1x1Layer", "CouplingLayer", "FactorOutLayer", "FlowLayer",
    "LearnedPriorLayer", "SequentialFlow", "SqueezeLayer", "is_initialized",
]
