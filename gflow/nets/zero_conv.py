"""Glow's zero-initialised output convolution."""

import keras

from gflow.nets.conv2d import Conv2D

__all__ = ["ZeroConv2D"]


@keras.saving.register_keras_serializable(package="gflow")
class ZeroConv2D(keras.layers.Layer):
  """Conv2D whose kernel and bias start at zero, times a learned exp(3·log_scale).

  Output = (conv(x) + b) · exp(logscale_factor · log_scale) per channel, all zero
  at start, so a coupling (or prior) that ends in it starts as the identity
  (standard normal). As in openai/glow's `conv2d_zeros`.
  """

  def __init__(self, filters, kernel_size=3, logscale_factor=3.0, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = kernel_size
    self.logscale_factor = logscale_factor
    self.conv = Conv2D(filters, kernel_size, padding="same", kernel_initializer="zeros",
                       dtype=self.dtype_policy)

  def build(self, input_shape):
    self.conv.build(input_shape)
    self.log_scale = self.add_weight(name="log_scale", shape=(self.filters,),
                                     initializer="zeros")

  def call(self, x):
    scale = keras.ops.exp(self.log_scale * self.logscale_factor)
    return self.conv(x) * keras.ops.cast(scale, self.compute_dtype)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.filters,)

  def get_config(self):
    return {**super().get_config(), "filters": self.filters,
            "kernel_size": self.kernel_size, "logscale_factor": self.logscale_factor}
