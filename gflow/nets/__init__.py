"""Keras 3 coupling networks: map x₁ (and optional conditioning) to coupling parameters."""

from gflow.nets.cross_unit_net import CrossUnitNet
from gflow.nets.glow_cnn import GlowCNN
from gflow.nets.mlp import MLP
from gflow.nets.zero_conv import ZeroConv2D

__all__ = ["CrossUnitNet", "GlowCNN", "MLP", "ZeroConv2D"]
