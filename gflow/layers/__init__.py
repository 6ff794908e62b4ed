"""Keras 3 layers that own flow variables and build gflow bijectors from them."""

from gflow.layers.actnorm import ActNormLayer
from gflow.layers.base import FlowLayer, SequentialFlow, inverse_of, is_initialized
from gflow.layers.channel_swap import ChannelSwapLayer
from gflow.layers.conv1x1 import Conv1x1Layer
from gflow.layers.coupling import CouplingLayer
from gflow.layers.cross_unit_block import CrossUnitBlock
from gflow.layers.factor_out import FactorOutLayer
from gflow.layers.learned_prior import LearnedPriorLayer
from gflow.layers.multiscale import MultiScale
from gflow.layers.permute_rows import PermuteRowsLayer
from gflow.layers.remat import checkpoint, recompute_scope
from gflow.layers.row_autoregressive import RowAutoregressiveLayer
from gflow.layers.squeeze import SqueezeLayer
from gflow.layers.stacked import StackedFlow
from gflow.layers.stochastic import StochasticFlowLayer, StochasticSequential
from gflow.layers.variational_dequantization import VariationalDequantization

__all__ = [
    "ActNormLayer", "ChannelSwapLayer", "Conv1x1Layer", "CouplingLayer", "CrossUnitBlock",
    "FactorOutLayer", "FlowLayer", "LearnedPriorLayer", "MultiScale", "PermuteRowsLayer",
    "RowAutoregressiveLayer", "SequentialFlow",
    "SqueezeLayer", "StackedFlow", "StochasticFlowLayer", "StochasticSequential", "VariationalDequantization",
    "checkpoint", "inverse_of", "is_initialized", "recompute_scope",
]
