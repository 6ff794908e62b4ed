"""Keras 3 coupling networks: map x₁ (and optional conditioning) to coupling parameters."""

from gflow.nets.cross_unit_net import CrossUnitNet
from gflow.nets.dense_block import DenseBlock
from gflow.nets.denseflow_coupling import DenseFlowCouplingNet
from gflow.nets.glow_cnn import GlowCNN
from gflow.nets.mlp import MLP
from gflow.nets.nystrom_attention import NystromAttention
from gflow.nets.zero_conv import ZeroConv2D

__all__ = ["MLP", "CrossUnitNet", "DenseBlock", "DenseFlowCouplingNet", "GlowCNN",
           "NystromAttention", "ZeroConv2D"]
