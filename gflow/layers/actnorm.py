"""Keras owner of ActNorm's variables, with the explicit data-dependent init."""

import tensorflow as tf

from gflow.bijectors.actnorm import ActNorm, actnorm_init_from_data
from gflow.layers.base import FlowLayer

__all__ = ["ActNormLayer"]


class ActNormLayer(FlowLayer):
  """Per-channel shift and log-scale; `initialize(x)` sets them from batch statistics.

  The `initialized` flag is a (non-trainable) variable, so it is checkpointed and
  a reload never re-initialises. Under a `tf.distribute` strategy, call
  `initialize` inside `strategy.run`: statistics are reduced over all replicas.
  """

  def build(self, input_shape):
    c = input_shape[-1]
    if c is None:
      raise ValueError(f"ActNormLayer needs a known channel count; got {input_shape}.")
    # The values are identical on every replica after the all-reduce, so one
    # replica's assignment is the truth ("only_first_replica").
    kw = dict(initializer="zeros", aggregation="only_first_replica")
    self.shift = self.add_weight(name="shift", shape=(c,), **kw)
    self.log_scale = self.add_weight(name="log_scale", shape=(c,), **kw)
    self.initialized = self.add_weight(
        name="initialized", shape=(), dtype="bool", trainable=False, **kw)

  def bijector(self, conditioning=None):
    return ActNorm(tf.convert_to_tensor(self.shift),
                   tf.convert_to_tensor(self.log_scale), name=self.name)

  def initialize(self, x):
    shift, log_scale = actnorm_init_from_data(x)
    self.shift.assign(shift)
    self.log_scale.assign(log_scale)
    self.initialized.assign(True)
    return ActNorm(shift, log_scale).forward(x)

  def is_initialized(self):
    return bool(self.initialized.numpy())
