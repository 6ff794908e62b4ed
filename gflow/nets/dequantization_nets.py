"""The networks of Flow++'s variational dequantizer as DenseFlow builds it.

`DequantizationContextNet` summarises the integer image x at half resolution;
`DequantizationCouplingNet` is the coupling network of each conditional affine
coupling, reading one half of the squeezed noise together with that summary
(Ho et al. 2019, §3.1; Grcić et al. 2021, Appendix C).
"""

import keras

from gflow.nets.conv2d import Conv2D
from gflow.nets.dense_block import DenseBlock

__all__ = ["DequantizationContextNet", "DequantizationCouplingNet"]


def _positive_ints(owner, **values):
  bad = {k: v for k, v in values.items() if not isinstance(v, int) or v < 1}
  if bad:
    raise ValueError(f"{owner} needs positive ints for "
                     + ", ".join(f"{k} (got {v!r})" for k, v in bad.items()) + ".")


@keras.saving.register_keras_serializable(package="gflow")
class DequantizationContextNet(keras.layers.Layer):
  """c(x): [H, W, C] levels → [H/2, W/2, `out_channels`] features.

  x is scaled to [−1, 1] by 2x/(K−1) − 1, then gated DenseBlock(`out_channels`,
  `depth`, `growth`) → 2x2 conv with stride 2 → gated DenseBlock(`out_channels`,
  `depth`, `growth`). H and W must be even.
  """

  def __init__(self, out_channels=64, num_levels=256, depth=4, growth=16, **kwargs):
    super().__init__(**kwargs)
    _positive_ints("DequantizationContextNet", out_channels=out_channels, depth=depth,
                   growth=growth)
    if not isinstance(num_levels, int) or num_levels < 2:
      raise ValueError(f"DequantizationContextNet needs an int num_levels >= 2; "
                       f"got {num_levels!r}.")
    self.out_channels = out_channels
    self.num_levels = num_levels
    self.depth = depth
    self.growth = growth
    policy = self.dtype_policy
    self.full = DenseBlock(out_channels, depth=depth, growth=growth, gated=True, dtype=policy)
    self.down = Conv2D(out_channels, 2, strides=2, dtype=policy)
    self.half = DenseBlock(out_channels, depth=depth, growth=growth, gated=True, dtype=policy)

  def build(self, input_shape):
    h, w = input_shape[-3:-1]
    if input_shape[-1] is None or (h is not None and h % 2) or (w is not None and w % 2):
      raise ValueError(f"DequantizationContextNet needs known channels and even height "
                       f"and width; got input shape {tuple(input_shape)}.")
    shape = tuple(input_shape)
    self.full.build(shape)
    shape = shape[:-1] + (self.out_channels,)
    self.down.build(shape)
    shape = self.down.compute_output_shape(shape)
    self.half.build(shape)

  def call(self, x):
    x = keras.ops.cast(x, self.compute_dtype)
    x = x * (2. / (self.num_levels - 1)) - 1.
    return self.half(self.down(self.full(x)))

  def compute_output_shape(self, input_shape):
    b, h, w, _ = input_shape
    return (b, None if h is None else h // 2, None if w is None else w // 2,
            self.out_channels)

  def get_config(self):
    return {**super().get_config(), "out_channels": self.out_channels,
            "num_levels": self.num_levels, "depth": self.depth, "growth": self.growth}


@keras.saving.register_keras_serializable(package="gflow")
class DequantizationCouplingNet(keras.layers.Layer):
  """NN(x₁, c): concat → 1x1 conv (`width`) → h + DenseBlock(h) → zero 1x1 conv.

  The dense block is gated (`depth` layers adding `growth` maps each) and maps
  back to `width` channels, so it is a residual branch; the last 1x1 conv to
  `out_channels` starts at zero, so a coupling that uses it starts as the
  identity. Called as `net(x1, conditioning=c)` by
  `gflow.bijectors.AffineCoupling(..., conditioning=c)`.
  """

  def __init__(self, out_channels, width=64, depth=4, growth=64, **kwargs):
    super().__init__(**kwargs)
    _positive_ints("DequantizationCouplingNet", out_channels=out_channels, width=width,
                   depth=depth, growth=growth)
    self.out_channels = out_channels
    self.width = width
    self.depth = depth
    self.growth = growth
    policy = self.dtype_policy
    self.project = Conv2D(width, 1, dtype=policy)
    self.dense = DenseBlock(width, depth=depth, growth=growth, gated=True, dtype=policy)
    self.out = Conv2D(out_channels, 1, kernel_initializer="zeros", bias_initializer="zeros",
                      dtype=policy)

  def build(self, x_shape, conditioning_shape):
    if x_shape[-1] is None or conditioning_shape[-1] is None:
      raise ValueError(f"DequantizationCouplingNet needs known channel counts; got "
                       f"{tuple(x_shape)} and conditioning {tuple(conditioning_shape)}.")
    hidden = tuple(x_shape[:-1]) + (self.width,)
    self.project.build(tuple(x_shape[:-1]) + (x_shape[-1] + conditioning_shape[-1],))
    self.dense.build(hidden)
    self.out.build(hidden)

  def call(self, x, conditioning):
    h = self.project(keras.ops.concatenate(
        [x, keras.ops.cast(conditioning, x.dtype)], axis=-1))
    return self.out(h + self.dense(h))

  def compute_output_shape(self, x_shape, conditioning_shape):
    return tuple(x_shape[:-1]) + (self.out_channels,)

  def get_config(self):
    return {**super().get_config(), "out_channels": self.out_channels,
            "width": self.width, "depth": self.depth, "growth": self.growth}
