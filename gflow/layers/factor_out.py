"""Keras owner of a multi-scale split: the inner flow and the split prior's network."""

import tensorflow as tf

from gflow.bijectors.factor_out import FactorOut
from gflow.layers.base import (FlowLayer, bijector_of, forward_and_log_det_of, inverse_of,
                               is_initialized)
from gflow.nets.zero_conv import ZeroConv2D

__all__ = ["FactorOutLayer"]


class FactorOutLayer(FlowLayer):
  """Keeps ⌈C/2⌉ channels for `inner` and scores the rest by a prior.

  With `learned_prior=True` the prior is N(μ(x₁), σ(x₁)²) from a zero-initialised
  3x3 conv of the kept half (Glow's split prior); otherwise N(0, I).
  """

  def __init__(self, inner, learned_prior=True, **kwargs):
    super().__init__(**kwargs)
    self.inner = inner
    self.learned_prior = learned_prior

  def build(self, input_shape):
    c = input_shape[-1]
    kept = tuple(input_shape[:-1]) + (c - c // 2,)
    if self.inner is not None:
      self.inner.build(kept)
      out = self.inner.compute_output_shape(kept)
      if tuple(out) != kept:
        raise ValueError(f"FactorOutLayer's inner flow must keep its input shape "
                         f"{kept}; it gives {out}.")
    self.prior = ZeroConv2D(2 * (c // 2)) if self.learned_prior else None
    if self.prior is not None:
      self.prior.build(kept)

  def bijector(self, conditioning=None):
    inner = bijector_of(self.inner, conditioning) if self.inner is not None else None
    return FactorOut(inner, prior_network=self.prior, name=self.name)

  def forward_and_log_det(self, x, event_ndims, training=False, conditioning=None):
    if event_ndims != 3:
      raise ValueError(f"FactorOutLayer acts on NHWC events; got event_ndims={event_ndims}.")
    split = FactorOut(prior_network=self.prior, name=self.name)  # the prior's math only
    c = x.shape[-1]
    x1, x2 = tf.split(x, [c - c // 2, c // 2], axis=-1)
    z1, ldj = (forward_and_log_det_of(self.inner, x1, 3, training, conditioning)
               if self.inner is not None else (x1, 0.))
    z2, prior_ldj = split.normalize_factored(x1, x2)
    return tf.concat([z1, z2], axis=-1), ldj + prior_ldj

  def inverse(self, y, conditioning=None):
    split = FactorOut(prior_network=self.prior, name=self.name)  # the prior's math only
    c = y.shape[-1]
    z1, z2 = tf.split(y, [c - c // 2, c // 2], axis=-1)
    x1 = inverse_of(self.inner, z1, conditioning) if self.inner is not None else z1
    return tf.concat([x1, split.denormalize_factored(x1, z2)], axis=-1)

  def initialize(self, x):
    c = x.shape[-1]
    x1 = x[..., :c - c // 2]
    if self.inner is not None:
      self.inner.initialize(x1)
    return self.bijector().forward(x)

  def is_initialized(self):
    return self.inner is None or is_initialized(self.inner)
