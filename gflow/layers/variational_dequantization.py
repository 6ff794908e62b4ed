"""Variational dequantization: a conditional flow q(u | x) on the unit cube."""

import functools
import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from gflow.bijectors.coupling import AffineCoupling
from gflow.bijectors.squeeze import Squeeze
from gflow.layers.conv1x1 import Conv1x1Layer
from gflow.nets.dequantization_nets import (
  DequantizationContextNet,
  DequantizationCouplingNet,
)

tfb = tfp.bijectors

__all__ = ["VariationalDequantization"]

_HALF_LOG_2PI = 0.5 * math.log(2. * math.pi)


@keras.saving.register_keras_serializable(package="gflow")
class VariationalDequantization(keras.layers.Layer):
  """Dequantization noise u ∈ (0, 1)^D drawn from a flow conditioned on the levels x.

  Map ε ↦ u = sigmoid(unsqueeze(W_n A_n−1(W_n−1 ⋯ A_0(W_0 ε; c(x)) ⋯))), ε ~ N(μ, σ²).
  Inverse: the steps undone from logit(u).  log q(u|x) = log N(ε; μ, σ²) − log|det ∂u/∂ε|.

  Flow++ (Ho et al. 2019, §3.1) as DenseFlow uses it (Grcić et al. 2021): ε has
  the shape of the squeezed image [H/2, W/2, 4C] with a learned per-channel
  mean μ and scale σ; W_k are invertible 1x1 convolutions (LU-parameterised
  unless `lu=False`); A_k are affine couplings with scale exp(2·tanh(h/2))
  whose `DequantizationCouplingNet` (`width`; a gated dense block of `depth`
  layers adding `growth` maps) reads one half of the channels and the context
  c(x) of a `DequantizationContextNet` (`context_channels`, half resolution).
  Then log P(x) ≥ E_q[log p(x + u) − log q(u | x)] for x ∈ {0, …, K−1}^D with
  K = `num_levels`.

  `sample(x, noise)` gives (u, log q(u | x)) in one pass; `log_prob(u, x)`
  inverts; `bijector(x)` is the map ε ↦ u (forward = noise → u, unlike the
  data → latent flow layers) as a fresh `tfp.bijectors.Chain`.
  """

  def __init__(self, num_levels=256, num_steps=4, context_channels=64, width=64, depth=4,
               growth=64, lu=True, network_dtype=None, **kwargs):
    super().__init__(**kwargs)
    if not isinstance(num_levels, int) or num_levels < 2:
      raise ValueError(f"VariationalDequantization needs an int num_levels >= 2; "
                       f"got {num_levels!r}.")
    sizes = {"num_steps": num_steps, "context_channels": context_channels, "width": width,
             "depth": depth, "growth": growth}
    bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or v < 1}
    if bad:
      raise ValueError("VariationalDequantization needs positive ints for "
                       + ", ".join(f"{k} (got {v!r})" for k, v in bad.items()) + ".")
    self.num_levels = num_levels
    self.num_steps = num_steps
    self.context_channels = context_channels
    self.width = width
    self.depth = depth
    self.growth = growth
    self.lu = lu
    self.network_dtype = network_dtype
    self.context_net = DequantizationContextNet(context_channels, num_levels=num_levels,
                                                dtype=self._network_policy())
    self.convs = [Conv1x1Layer(lu=lu, dtype=self.dtype_policy) for _ in range(num_steps + 1)]
    self.coupling_nets = []

  def _network_policy(self):
    """The networks' dtype policy: `network_dtype` (e.g. mixed_bfloat16), else the
    layer's own (the flow's maps and log-dets keep the layer's)."""
    return self.network_dtype or self.dtype_policy

  def _check_shape(self, shape):
    shape = tuple(shape)
    if len(shape) != 4 or None in shape[1:] or shape[1] % 2 or shape[2] % 2:
      raise ValueError(f"VariationalDequantization squeezes 2x2, so it needs images "
                       f"[batch, H, W, C] with known, even H and W and known C; got shape "
                       f"{shape}.")
    return shape

  def build(self, input_shape):
    _, h, w, c = self._check_shape(input_shape)
    noise_shape = (None, h // 2, w // 2, 4 * c)
    self.context_net.build((None, h, w, c))
    context_shape = self.context_net.compute_output_shape((None, h, w, c))
    half = 2 * c  # the coupling splits the 4C channels into two halves of 2C
    self.coupling_nets = [
        DequantizationCouplingNet(2 * half, width=self.width, depth=self.depth,
                                  growth=self.growth, dtype=self._network_policy())
        for _ in range(self.num_steps)]
    for net in self.coupling_nets:
      net.build(noise_shape[:-1] + (half,), context_shape)
    for conv in self.convs:
      conv.build(noise_shape)
    self.loc = self.add_weight(name="loc", shape=(4 * c,), initializer="zeros")
    self.log_scale = self.add_weight(name="log_scale", shape=(4 * c,), initializer="zeros")

  def noise_shape(self, x):
    """[B, H/2, W/2, 4C] for images x."""
    _, h, w, c = self._check_shape(x.shape)
    return [tf.shape(x)[0], h // 2, w // 2, 4 * c]

  def context(self, x, training=False):
    """c(x) at half resolution, shared by every coupling."""
    if not self.built:
      self.build(x.shape)
    self._check_shape(x.shape)
    return self.context_net(x, training=training)

  def _steps(self, context, training=False):
    """The bijectors ε ↦ u in the order they apply."""
    steps = []
    for conv, net in zip(self.convs, self.coupling_nets):
      network = functools.partial(net, training=True) if training else net
      steps += [conv.bijector(),
                AffineCoupling(network, scale_fn="exp_tanh", conditioning=context,
                               name=f"{net.name}_coupling")]
    return steps + [self.convs[-1].bijector(), tfb.Invert(Squeeze(2)), tfb.Sigmoid()]

  def bijector(self, x, training=False):
    """A fresh `tfb.Chain` mapping ε ([B, H/2, W/2, 4C]) to u ([B, H, W, C]) given x."""
    steps = self._steps(self.context(x, training), training)
    return tfb.Chain(list(reversed(steps)), name=self.name)

  def _base_log_prob(self, n):
    """log N(ε; μ, σ²) per example for ε = μ + σ·n."""
    log_n = -0.5 * tf.square(n) - self.log_scale - _HALF_LOG_2PI
    return tf.reduce_sum(log_n, axis=[1, 2, 3])

  def sample(self, x, noise, stream=0, training=False):
    """(u, log q(u | x)) per example, ε drawn by `noise.normal(noise_shape, stream)`.

    `noise` is a `gflow.Noise`; the couplings' networks run once each.
    """
    context = self.context(x, training)
    n = noise.normal(self.noise_shape(x), stream, dtype=self.loc.dtype)
    y = self.loc + tf.exp(self.log_scale) * n
    log_q = self._base_log_prob(n)
    for step in self._steps(context, training):
      if isinstance(step, AffineCoupling):
        y, ldj = step.forward_and_log_det(y, 3)
      else:
        ldj = step.forward_log_det_jacobian(y, event_ndims=3)
        y = step.forward(y)
      log_q -= ldj
    return y, log_q

  def log_prob(self, u, x, training=False):
    """log q(u | x) for u ∈ (0, 1)^D, by inverting the flow."""
    b = self.bijector(x, training)
    u = tf.convert_to_tensor(u, self.loc.dtype)
    n = (b.inverse(u) - self.loc) * tf.exp(-self.log_scale)
    return self._base_log_prob(n) + b.inverse_log_det_jacobian(u, event_ndims=3)

  def call(self, x):
    raise TypeError("VariationalDequantization draws noise: use sample(x, noise) or "
                    "log_prob(u, x).")

  def compute_output_shape(self, input_shape):
    return tuple(input_shape)

  def get_config(self):
    return {**super().get_config(), "num_levels": self.num_levels,
            "num_steps": self.num_steps, "context_channels": self.context_channels,
            "width": self.width, "depth": self.depth, "growth": self.growth, "lu": self.lu,
            "network_dtype": self.network_dtype}
