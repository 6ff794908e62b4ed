"""A fully connected coupling network for vector data."""

import keras

from gflow.nets.conditioning import concat_conditioning

__all__ = ["MLP"]


@keras.saving.register_keras_serializable(package="gflow")
class MLP(keras.layers.Layer):
  """`depth` Dense(`width`, ReLU) layers, then a zero-initialised Dense(`out_channels`).

  With `conditioning_dim` > 0, `call(x, conditioning=c)` feeds [x, c] (c of that
  many features) into the first layer.
  """

  def __init__(self, out_channels, width=64, depth=2, conditioning_dim=0, **kwargs):
    super().__init__(**kwargs)
    if out_channels < 1 or width < 1 or depth < 0 or conditioning_dim < 0:
      raise ValueError(f"MLP needs out_channels, width >= 1, depth >= 0 and conditioning_dim "
                       f">= 0; got {out_channels}, {width}, {depth}, {conditioning_dim}.")
    self.out_channels, self.width, self.depth = out_channels, width, depth
    self.conditioning_dim = conditioning_dim
    policy = self.dtype_policy
    self.hidden = [keras.layers.Dense(width, activation="relu", dtype=policy)
                   for _ in range(depth)]
    self.out = keras.layers.Dense(out_channels, kernel_initializer="zeros", dtype=policy)

  def build(self, input_shape):
    shape = tuple(input_shape[:-1]) + (input_shape[-1] + self.conditioning_dim,)
    for layer in self.hidden:
      layer.build(shape)
      shape = shape[:-1] + (self.width,)
    self.out.build(shape)

  def call(self, x, conditioning=None):
    x = concat_conditioning(self, x, conditioning, self.conditioning_dim)
    for layer in self.hidden:
      x = layer(x)
    return self.out(x)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.out_channels,)

  def get_config(self):
    return {**super().get_config(), "out_channels": self.out_channels,
            "width": self.width, "depth": self.depth,
            "conditioning_dim": self.conditioning_dim}
