"""DenseNet-style block with a gated output, DenseFlow's local coupling branch."""

import keras

from gflow.nets.conv2d import Conv2D

__all__ = ["DenseBlock"]


@keras.saving.register_keras_serializable(package="gflow")
class DenseBlock(keras.layers.Layer):
  """`depth` layers [1x1 conv → ReLU → 3x3 conv → ReLU] each concatenating `growth` new
  maps onto its input (Huang et al. 2017), then a gated 1x1 conv a + b·sigmoid(c)
  (or a plain 1x1 conv) to `out_channels` (Grcić et al. 2021, Fig. 2).
  """

  def __init__(self, out_channels, depth=7, growth=64, gated=True, **kwargs):
    super().__init__(**kwargs)
    if out_channels < 1 or depth < 0 or growth < 1:
      raise ValueError(f"DenseBlock needs out_channels >= 1, depth >= 0 and growth >= 1; "
                       f"got {out_channels}, {depth} and {growth}.")
    self.out_channels, self.depth, self.growth, self.gated = out_channels, depth, growth, gated
    policy = self.dtype_policy
    self.squeeze_convs, self.grow_convs = [], []
    for i in range(depth):
      self.grow_convs.append(Conv2D(growth, 3, padding="same", activation="relu",
                                    dtype=policy, name=f"grow_{i}"))
    self.out = Conv2D((3 if gated else 1) * out_channels, 1, dtype=policy, name="out")

  def build(self, input_shape):
    c = input_shape[-1]
    if c is None:
      raise ValueError(f"DenseBlock needs a known channel count; got {input_shape}.")
    rest = tuple(input_shape[:-1])
    self.squeeze_convs = []
    for i, grow in enumerate(self.grow_convs):
      width = c + i * self.growth
      conv = Conv2D(width, 1, activation="relu", dtype=self.dtype_policy, name=f"mix_{i}")
      conv.build(rest + (width,))
      grow.build(rest + (width,))
      self.squeeze_convs.append(conv)
    self.out.build(rest + (c + self.depth * self.growth,))

  def call(self, x):
    for mix, grow in zip(self.squeeze_convs, self.grow_convs):
      x = keras.ops.concatenate([x, grow(mix(x))], axis=-1)
    h = self.out(x)
    if not self.gated:
      return h
    a, b, c = keras.ops.split(h, 3, axis=-1)
    return a + b * keras.ops.sigmoid(c)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.out_channels,)

  def get_config(self):
    return {**super().get_config(), "out_channels": self.out_channels, "depth": self.depth,
            "growth": self.growth, "gated": self.gated}
