"""A bijective flow as a TFP distribution."""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from gflow.bijectors.dequantization import UniformDequantization
from gflow.bijectors.expect_shape import ExpectShape
from gflow.flows.base import LayerDistribution, data_of
from gflow.flows.parts import FlowParts
from gflow.noise import Noise
from gflow.layers.base import inverse_of, is_initialized
from gflow.nets.sharing import build_shared_networks

tfb = tfp.bijectors

__all__ = ["Flow"]


class Flow(LayerDistribution):
  """log p(x) = log N(f(x); 0, I) + log|det ∂f/∂x| for a flow f: data → latent.

  `layer` is the Keras `FlowLayer` that owns every variable; `bijector` is
  built from it on each use (forward = data → latent, the latent has the data's
  shape). For image data (`num_levels` set, 256 for 8-bit) the density is over
  dequantized values v = x + u in level units [0, K), so `bits_per_dim` of
  integer images is the usual uniform-dequantization bound with the 8-bit term
  included. `sample(n, seed=, temperature=)` draws at a temperature T by scaling
  the standard normal (Glow); an int seed is used as the stateless seed
  [seed, 0], so equal seeds give equal samples. Samples are in level units;
  `quantize` makes them integer images.
  """

  def __init__(self, layer, event_shape, num_levels=256, validate_args=False,
               name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "Flow") as name:
      event_shape = tf.TensorShape(event_shape)
      if event_shape.is_fully_defined() and not layer.built:
        layer.build((None, *event_shape))
      build_shared_networks(layer)
      self._dequantization = (UniformDequantization(num_levels)
                              if num_levels is not None else None)
      super().__init__(layer, event_shape, parameters, validate_args, name)

  @property
  def num_levels(self):
    return None if self._dequantization is None else self._dequantization.num_levels

  @property
  def bijector(self):
    """A fresh bijector data → latent reading the current variables."""
    return tfb.Chain([self._layer.bijector(), *self._data_side()])

  def _data_side(self):
    """The bijectors between the data and the layer's input, in `tfb.Chain`'s order."""
    check = ExpectShape(self._event_shape_static, owner=f"{self.name}.bijector")
    return [check] if self._dequantization is None else [self._dequantization, check]

  def _check_value(self, x, what):
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
      hint = (" For integer images use bits_per_dim(x), or dequantize first "
              "(gflow.data.dequantize)." if self.num_levels else "")
      raise TypeError(f"{self.name}.{what} expects floating-point values; got "
                      f"{x.dtype.name}.{hint}")
    n = self._event_shape_static.rank
    if x.shape.rank is not None and (
        x.shape.rank < n or not x.shape[-n:].is_compatible_with(self._event_shape_static)):
      raise ValueError(f"{self.name}.{what} expects values of shape [..., "
                       f"{', '.join(map(str, self._event_shape_static))}]; got {x.shape}.")
    return tf.cast(x, self.dtype)

  def log_prob(self, value, name="log_prob", **kwargs):
    return super().log_prob(self._check_value(value, "log_prob"), name=name, **kwargs)

  def _log_prob(self, x, training=False):
    return self.flat_batch(x, lambda b: self._batch_log_prob(b, training))

  def _batch_log_prob(self, x, training=False):
    n = self._event_shape_static.rank
    ldj = 0.
    if self._dequantization is not None:
      ldj = self._dequantization.forward_log_det_jacobian(x, event_ndims=n)
      x = self._dequantization.forward(x)
    z, flow_ldj = self._layer.forward_and_log_det(x, n, training=training)
    ldj += flow_ldj
    return standard_normal_log_prob(z) + ldj

  def _sample_n(self, n, seed=None, temperature=1.0):
    if isinstance(seed, (int, np.integer)):  # reproducible, unlike TFP's stateful ints
      seed = [int(seed), 0]
    seed = tfp.random.sanitize_seed(seed)
    z = tf.random.stateless_normal(
        tf.concat([[n], self._event_shape_tensor()], 0), seed=seed) * temperature
    x = inverse_of(self._layer, z)  # the bijector's inverse, its modules' traces shared
    for b in self._data_side():
      x = b.inverse(x)
    return x

  def bits_per_dim(self, x, seed=None, training=False, num_samples=1, chunk_size=None):
    """−log₂ p(x) / D per example.

    Integer images are dequantized with U[0, 1) noise drawn statelessly from
    `seed` (an int, a [2] seed or a `gflow.Noise`; default: a fixed seed,
    so the figure is repeatable); the result is then the dequantization bound
    on the discrete bits/dim. Float input is taken as already dequantized.
    The density is exact: `num_samples` > 1 (importance samples) is refused.
    """
    if num_samples != 1:
      raise ValueError(f"{self.name} has no noise to importance-sample: its bits/dim is "
                       f"exact (use num_importance_samples=1).")
    x = self._dequantized(x, seed, "bits_per_dim")
    return -self.log_prob(x, training=training) / (self.num_dims * math.log(2.))

  def _dequantized(self, x, seed, what):
    """Integer images + U[0, 1) noise from `seed`; float input as it is."""
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_integer:
      return x
    if self._dequantization is None:
      raise TypeError(f"{self.name} models continuous data; got {x.dtype.name}.")
    x = self.check_levels(x, what)
    if isinstance(seed, Noise):
      return tf.cast(x, tf.float32) + seed.uniform([tf.shape(x)[0], *x.shape[1:]], 0)
    return self.dequantize(x, seed)

  def flow_parts(self, split, boundaries):
    """The flow's stages cut into gradient-isolated parts (`gflow.flows.parts`)."""
    return FlowParts(self._layer, split, boundaries)

  def part_losses(self, batch, seed, parts, training=False, upto=None):
    """Each part's local objective per example in bits/dim (`gflow.flows.parts`): part
    k's input is its predecessor's output with the gradient stopped; the part's output
    is scored by N(0, I). With one part it equals `loss`."""
    x = self._check_value(self._dequantized(data_of(batch), seed, "part_losses"),
                          "part_losses")
    n = self._event_shape_static.rank
    extra = 0.
    if self._dequantization is not None:
      extra = self._dequantization.forward_log_det_jacobian(x, event_ndims=n)
      x = self._dequantization.forward(x)
    losses = parts.losses(x, standard_normal_log_prob, n, training=training, upto=upto,
                          extra_ldj=extra)
    return [loss / (self.num_dims * math.log(2.)) for loss in losses]

  def dequantize(self, x, seed=None):
    """x + U[0, 1) noise (stateless, from `seed`), in level units."""
    seed = tfp.random.sanitize_seed(seed if seed is not None else 0)
    return self._dequantization.dequantize(x, seed)

  def quantize(self, v):
    """Samples in level units → integer images."""
    return self._dequantization.quantize(v)

  def initialize(self, x, seed=None):
    """Data-dependent initialisation (ActNorm) from a batch in level units (or a
    protocol batch {"x": …}).

    `seed` is accepted for the interface shared with stochastic flows and unused.

    Call it once before training, inside `strategy.run` under a strategy (the
    statistics are then those of the global batch). Returns the latent.
    """
    x = self._check_value(data_of(x), "initialize")
    if self._dequantization is not None:
      x = self._dequantization.forward(x)
    return self._layer.initialize(x)

  def is_initialized(self):
    return is_initialized(self._layer)


def standard_normal_log_prob(t):
  """log N(t; 0, I) per example: summed over every axis but the first."""
  size = math.prod(t.shape[1:])
  return (-0.5 * tf.reduce_sum(tf.square(t), axis=list(range(1, t.shape.rank)))
          - 0.5 * size * math.log(2 * math.pi))
