"""Keras 3 coupling networks: map x₁ (and optional conditioning) to coupling parameters."""

from gflow.nets.conv2d import Conv2D, conv_gradients
from gflow.nets.cross_unit_net import CrossUnitNet
from gflow.nets.dense_block import DenseBlock
from gflow.nets.denseflow_coupling import DenseFlowCouplingNet
from gflow.nets.glow_cnn import GlowCNN
from gflow.nets.mel_upsampler import MelUpsampler
from gflow.nets.mlp import MLP
from gflow.nets.modulation import Modulation
from gflow.nets.nystrom_attention import NystromAttention
from gflow.nets.sharing import (SharedFlowNetwork, SharedNetwork, build_shared_networks,
                                 sharing_factory)
from gflow.nets.wavenet2d import HEIGHT_DILATIONS, WaveNet2D
from gflow.nets.weight_norm import WeightNormConv2D
from gflow.nets.zero_conv import ZeroConv2D

__all__ = ["HEIGHT_DILATIONS", "MLP", "Conv2D", "CrossUnitNet", "DenseBlock",
           "DenseFlowCouplingNet", "GlowCNN", "MelUpsampler", "Modulation", "NystromAttention", "SharedFlowNetwork",
           "SharedNetwork", "WaveNet2D", "WeightNormConv2D", "ZeroConv2D",
           "build_shared_networks", "conv_gradients", "sharing_factory"]
