"""The `gflow_core` plugin: examples of every core bijector and flow layer, for the contract.

Each factory takes a dtype and returns a `gflow.BijectorExample`; parameters are
random (seeded) so that no bijector is checked at the identity. Examples built
by a flow layer carry it, so the layer's one-pass `forward_and_log_det` is
checked against its bijector too. This module sits above the layer library
(bijectors, layers, nets), which it only uses.
"""

import functools

import numpy as np
import tensorflow as tf

from gflow import layers as gl
from gflow import nets
from gflow.bijectors.actnorm import ActNorm
from gflow.bijectors.channel_swap import ChannelSwap
from gflow.bijectors.conv1x1 import Conv1x1
from gflow.bijectors.coupling import AdditiveCoupling, AffineCoupling
from gflow.bijectors.cross_unit_coupling import CrossUnitCoupling
from gflow.bijectors.dequantization import UniformDequantization
from gflow.bijectors.factor_out import FactorOut
from gflow.bijectors.fold import Fold
from gflow.bijectors.squeeze import Squeeze
from gflow.plugin import BijectorExample, Plugin

IMAGE = (2, 4, 4, 4)  # batch 2 of 4x4x4 events: 64 dims, cheap full Jacobians


def _rng(seed=0):
  return np.random.RandomState(seed)


def _x(dtype, shape=IMAGE, seed=1):
  return tf.constant(_rng(seed).randn(*shape), dtype)


def randomize(layer, scale=0.1, seed=0):
  """Overwrites every weight of a built Keras layer with seeded N(0, scale²) draws."""
  rng = _rng(seed)
  for v in layer.weights:
    if v.dtype in ("float32", "float64", "bfloat16", "float16"):
      v.assign(tf.cast(rng.randn(*v.shape) * scale, v.dtype))
  return layer


def _net(out_channels, in_channels, dtype, spatial=(4, 4), seed=0):
  net = nets.GlowCNN(out_channels, width=8, dtype=dtype)
  net.build((None, *spatial, in_channels))
  return randomize(net, seed=seed)


def actnorm(dtype):
  rng = _rng(2)
  b = ActNorm(tf.constant(rng.randn(4), dtype), tf.constant(rng.randn(4) * 0.3, dtype))
  return BijectorExample(b, _x(dtype), 3)


def conv1x1_lu(dtype):
  layer = gl.Conv1x1Layer(lu=True, seed=3, dtype=dtype)
  layer.build(IMAGE)
  randomize(layer, scale=0.3, seed=3)  # P and sign stay a permutation and ±1
  layer.permutation.assign(tf.constant(np.eye(4)[[2, 0, 3, 1]], dtype))
  layer.sign.assign(tf.constant([1., -1., 1., -1.], dtype))
  return BijectorExample(layer.bijector(), _x(dtype), 3, owner=layer, layer=layer)


def conv1x1(dtype):
  kernel = _rng(4).randn(4, 4) + 2 * np.eye(4)
  return BijectorExample(Conv1x1(tf.constant(kernel, dtype)), _x(dtype), 3)


def squeeze(dtype):
  return BijectorExample(Squeeze(2), _x(dtype), 3)


def _affine(scale_fn, dtype):
  net = _net(4, 2, dtype, seed=5)
  layer = gl.CouplingLayer(network=net, scale_fn=scale_fn, dtype=dtype)
  layer.build(IMAGE)
  return BijectorExample(AffineCoupling(net, scale_fn=scale_fn), _x(dtype), 3, owner=net,
                         layer=layer)


def affine_conditional(dtype):
  """Affine coupling whose network also sees a 3-channel conditioning map."""
  net = nets.GlowCNN(4, width=8, conditioning_channels=3, dtype=dtype)
  net.build((None, 4, 4, 2))
  randomize(net, seed=12)
  layer = gl.CouplingLayer(network=net, scale_fn="exp_tanh", dtype=dtype)
  layer.build(IMAGE)
  cond = _x(dtype, (2, 4, 4, 3), seed=13)
  return BijectorExample(layer.bijector(cond), _x(dtype), 3, owner=net, layer=layer,
                         conditioning=cond)


def glow_step_shared(dtype):
  """ActNorm → LU 1x1 conv → two affine couplings sharing one network (conditioned)."""
  net = nets.MLP(6, width=8, depth=1, conditioning_dim=2, dtype=dtype)
  layer = gl.SequentialFlow([
      gl.ActNormLayer(dtype=dtype), gl.Conv1x1Layer(lu=True, seed=3, dtype=dtype),
      gl.CouplingLayer(network=net, event_ndims=1, scale_fn="exp_tanh", dtype=dtype),
      gl.Conv1x1Layer(lu=False, seed=4, dtype=dtype),
      gl.CouplingLayer(network=net, event_ndims=1, scale_fn="sigmoid", dtype=dtype)],
      dtype=dtype)
  layer.build((None, 6))
  randomize(layer, scale=0.3, seed=14)
  for conv in (layer.flow_layers[1],):  # P and sign stay a permutation and ±1
    conv.permutation.assign(tf.constant(np.eye(6)[[2, 0, 3, 1, 5, 4]], dtype))
    conv.sign.assign(tf.constant([1., -1., 1., -1., 1., 1.], dtype))
  layer.flow_layers[3].kernel.assign(
      tf.constant(_rng(15).randn(6, 6) * 0.3 + np.eye(6), dtype))
  cond = _x(dtype, (5, 2), seed=16)
  return BijectorExample(layer.bijector(cond), _x(dtype, (5, 6), seed=17), 1, owner=layer,
                         layer=layer, conditioning=cond)


def additive(dtype):
  net = _net(2, 2, dtype, seed=6)
  return BijectorExample(AdditiveCoupling(net), _x(dtype), 3, owner=net)


def affine_vector(dtype):
  net = nets.MLP(4, width=8, depth=1, dtype=dtype)
  net.build((None, 3))
  randomize(net, scale=0.5, seed=7)
  return BijectorExample(AffineCoupling(net, scale_fn="exp_tanh", event_ndims=1),
                         _x(dtype, (5, 5)), 1, owner=net)


def factor_out(dtype):
  prior = nets.ZeroConv2D(4, dtype=dtype)
  prior.build((None, 4, 4, 2))
  randomize(prior, seed=8)
  inner = ActNorm(tf.constant([0.5, -0.2], dtype), tf.constant([0.3, -0.4], dtype))
  return BijectorExample(FactorOut(inner, prior_network=prior), _x(dtype), 3, owner=prior)


def _wavenet(dtype, seed, height_dilations=(1, 2)):
  net = nets.WaveNet2D(4, conditioning_channels=3, layers=len(height_dilations),
                       height_dilations=height_dilations, dtype=dtype)
  net.build((None, 4, 6, 1))
  return randomize(net, scale=0.3, seed=seed)


def row_autoregressive(dtype):
  """WaveFlow's flow on a 4 × 6 folded waveform with a 3-channel conditioning map."""
  layer = gl.RowAutoregressiveLayer(_wavenet(dtype, 19), conditioning_rows=[2, 0, 3, 1],
                                    dtype=dtype)
  layer.build((None, 4, 6, 1))
  cond = _x(dtype, (2, 4, 6, 3), seed=20)
  return BijectorExample(layer.bijector(cond), _x(dtype, (2, 4, 6, 1), seed=21), 3,
                         owner=layer, layer=layer, conditioning=cond)


def permute_rows(dtype):
  layer = gl.PermuteRowsLayer([3, 1, 0, 2], dtype=dtype)
  layer.build((None, 4, 6, 1))
  return BijectorExample(layer.bijector(), _x(dtype, (2, 4, 6, 1)), 3, layer=layer)


def fold(dtype):
  return BijectorExample(Fold(4), _x(dtype, (2, 24, 1)), 2)


def factor_out_layer(dtype):
  """A two-level multi-scale stack: squeeze → coupling → split (learned prior) → inner
  ActNorm and learned top prior → unsqueeze (Glow's structure in small)."""
  inner = gl.SequentialFlow([gl.ActNormLayer(dtype=dtype), gl.LearnedPriorLayer(dtype=dtype)],
                            dtype=dtype)
  layer = gl.SequentialFlow([
      gl.SqueezeLayer(dtype=dtype),
      gl.CouplingLayer(lambda n: nets.GlowCNN(n, width=8, dtype=dtype), dtype=dtype),
      gl.FactorOutLayer(inner, dtype=dtype),
      gl.SqueezeLayer(unsqueeze=True, dtype=dtype)], dtype=dtype)
  layer.build(IMAGE)
  randomize(layer, scale=0.2, seed=18)
  return BijectorExample(layer.bijector(), _x(dtype), 3, owner=layer, layer=layer)


def dequantization(dtype):
  x = tf.constant(_rng(9).uniform(0, 256, size=(3, 2, 2, 1)), dtype)
  return BijectorExample(UniformDequantization(256), x, 3)


def cross_unit_coupling(dtype):
  """[z (3 channels), e (1)] with (μ, log σ) from a CrossUnitNet over a 5-channel context."""
  net = nets.CrossUnitNet(1, dtype=dtype)
  net.build((None, 4, 4, 5))
  randomize(net, scale=0.3, seed=10)
  context = _x(dtype, (2, 4, 4, 5), seed=11)
  return BijectorExample(CrossUnitCoupling(1, network=net, context=context), _x(dtype), 3,
                         owner=net)


def cross_unit_coupling_white(dtype):
  return BijectorExample(CrossUnitCoupling(2), _x(dtype), 3)


def channel_swap(dtype):
  return BijectorExample(ChannelSwap(), _x(dtype, (2, 4, 4, 5)), 3)


PLUGIN = Plugin(
    name="gflow_core",
    description="gflow's layer library (bijectors only)",
    bijectors={
        "actnorm": actnorm,
        "conv1x1_lu": conv1x1_lu,
        "conv1x1": conv1x1,
        "squeeze": squeeze,
        "affine_coupling_sigmoid": functools.partial(_affine, "sigmoid"),
        "affine_coupling_exp_tanh": functools.partial(_affine, "exp_tanh"),
        "affine_coupling_exp": functools.partial(_affine, "exp"),
        "affine_coupling_vector": affine_vector,
        "affine_coupling_conditional": affine_conditional,
        "glow_step_shared_network": glow_step_shared,
        "multiscale_layer": factor_out_layer,
        "row_autoregressive_affine": row_autoregressive,
        "permute_rows": permute_rows,
        "fold": fold,
        "additive_coupling": additive,
        "factor_out": factor_out,
        "uniform_dequantization": dequantization,
        "cross_unit_coupling": cross_unit_coupling,
        "cross_unit_coupling_white": cross_unit_coupling_white,
        "channel_swap": channel_swap,
    },
)
