"""Squeeze and unsqueeze as flow layers (no variables)."""

import tensorflow_probability as tfp

from gflow.bijectors.squeeze import Squeeze
from gflow.layers.base import FlowLayer

__all__ = ["SqueezeLayer"]


class SqueezeLayer(FlowLayer):
  """Space-to-depth by `factor` ([H, W, C] → [H/f, W/f, f²C]), or its inverse."""

  def __init__(self, factor=2, unsqueeze=False, **kwargs):
    super().__init__(**kwargs)
    self.factor = factor
    self.unsqueeze = unsqueeze

  def build(self, input_shape):
    self.compute_output_shape(input_shape)  # validates

  def compute_output_shape(self, input_shape):
    *batch, h, w, c = input_shape
    f = self.factor
    if self.unsqueeze:
      if c % (f * f):
        raise ValueError(f"Cannot unsqueeze {input_shape} by {f}: channels not "
                         f"divisible by {f * f}.")
      return (*batch, h * f, w * f, c // (f * f))
    if h % f or w % f:
      raise ValueError(f"Cannot squeeze {input_shape} by {f}: height and width "
                       f"must be divisible by {f}.")
    return (*batch, h // f, w // f, c * f * f)

  def bijector(self, conditioning=None):
    b = Squeeze(self.factor, name=self.name)
    return tfp.bijectors.Invert(b) if self.unsqueeze else b

  def get_config(self):
    return {**super().get_config(), "factor": self.factor, "unsqueeze": self.unsqueeze}
