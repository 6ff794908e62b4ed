"""Uniform dequantization of discrete data (Theis et al. 2016)."""

import math

import tensorflow as tf
import tensorflow_probability as tfp

from gflow.bijectors import _checks

tfb = tfp.bijectors

__all__ = ["UniformDequantization"]


class UniformDequantization(tfb.Bijector):
  """Maps dequantized values v = x + u ∈ [0, K) to y = v / K − ½ ∈ [−½, ½).

  Inverse v = (y + ½)·K.  log|det J| = −D·log K over D dimensions.

  With u ~ U[0, 1)^D (`dequantize`), E_u log p(x + u) ≤ log P(x) for the
  discrete x ∈ {0, …, K−1}^D, so a flow over v in "level units" gives a bound on
  the discrete log-likelihood with the 8-bit term already in it (K = 256).
  `quantize` maps a continuous sample back to levels.
  """

  def __init__(self, num_levels=256, validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "UniformDequantization") as name:
      if not isinstance(num_levels, int) or num_levels < 2:
        raise ValueError(f"num_levels must be an int >= 2; got {num_levels!r}.")
      self._num_levels = num_levels
      super().__init__(
          forward_min_event_ndims=0,
          is_constant_jacobian=True,
          validate_args=validate_args,
          parameters=parameters,
          name=name)

  @property
  def num_levels(self):
    return self._num_levels

  def _forward(self, x):
    _checks.floating(self, x)
    return x / self._num_levels - 0.5

  def _inverse(self, y):
    return (y + 0.5) * self._num_levels

  def _forward_log_det_jacobian(self, x):
    return tf.fill(tf.shape(x), tf.constant(-math.log(self._num_levels), x.dtype))

  def dequantize(self, x, seed):
    """x + u with u ~ U[0, 1) drawn statelessly from `seed` (shape [2] ints)."""
    x = tf.convert_to_tensor(x)
    if not (x.dtype.is_integer or x.dtype.is_floating):
      raise TypeError(f"dequantize expects integer levels; got {x.dtype.name}.")
    u = tf.random.stateless_uniform(tf.shape(x), seed=seed, dtype=tf.float32)
    return tf.cast(x, tf.float32) + u

  def quantize(self, v):
    """Levels floor(v) clipped to [0, K−1], as uint8 when K ≤ 256."""
    levels = tf.clip_by_value(tf.floor(v), 0., self._num_levels - 1.)
    return tf.cast(levels, tf.uint8 if self._num_levels <= 256 else tf.int32)
