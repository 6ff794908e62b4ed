"""A learned diagonal Gaussian prior, written as an affine bijector onto N(0, I)."""

import tensorflow as tf
import tensorflow_probability as tfp

from gflow.layers.base import FlowLayer

tfb = tfp.bijectors

__all__ = ["LearnedPriorLayer"]


class LearnedPriorLayer(FlowLayer):
  """z ↦ (z − μ) ⊙ e^{−log σ} with μ, log σ learned per element (Glow's `learntop`).

  Under a standard normal base this scores z by N(μ, σ²); both start at zero.
  With `per_channel=True`, μ and σ are shared over the pixels of a channel
  (DenseFlow's top prior).
  """

  def __init__(self, per_channel=False, **kwargs):
    super().__init__(**kwargs)
    self.per_channel = per_channel

  def build(self, input_shape):
    event = (tuple(input_shape[-1:]) if self.per_channel else tuple(input_shape[-3:]))
    self.mean = self.add_weight(name="mean", shape=event, initializer="zeros")
    self.log_scale = self.add_weight(name="log_scale", shape=event, initializer="zeros")

  def bijector(self, conditioning=None):
    return tfb.Chain([tfb.Scale(log_scale=-tf.convert_to_tensor(self.log_scale)),
                      tfb.Shift(-tf.convert_to_tensor(self.mean))], name=self.name)

  def get_config(self):
    return {**super().get_config(), "per_channel": self.per_channel}
