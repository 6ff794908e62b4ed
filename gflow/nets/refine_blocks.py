"""RefineNet's blocks as NCSNv2 uses them (Lin et al. 2017; Song & Ermon 2020), ELU throughout.

* `ResidualBlock`: InstanceNorm++ → ELU → conv → InstanceNorm++ → ELU → conv, plus a
  shortcut. `resample="down"` halves the resolution with mean pooling, except with
  `dilation` > 1, where dilated convolutions keep the resolution (as the official code).
* `RCUBlock`: residual conv units, each n stages of ELU → 3x3 conv (no bias).
* `CRPBlock`: chained residual pooling: ELU, then stages of 5x5 max-pool → 3x3 conv, summed.
* `MSFBlock`: multi-resolution fusion: a 3x3 conv per input, bilinear upsampling
  (corners aligned) to the finest shape, summed.
* `RefineBlock`: RCU per input → (MSF when several) → CRP → output RCU.
"""

import keras
import tensorflow as tf

from gflow.nets.instance_norm_plus import InstanceNormPlus
from gflow.nets.torch_conv import TorchConv2D

__all__ = ["ResidualBlock", "RCUBlock", "CRPBlock", "MSFBlock", "RefineBlock"]

_elu = keras.ops.elu


class _ConvMeanPool(keras.layers.Layer):
  """conv (same padding) → 2x2 mean pooling."""

  def __init__(self, filters, kernel_size, **kwargs):
    super().__init__(**kwargs)
    self.conv = TorchConv2D(filters, kernel_size, dtype=self.dtype_policy)
    self.pool = keras.layers.AveragePooling2D(2, dtype=self.dtype_policy)

  def build(self, input_shape):
    self.conv.build(input_shape)

  def call(self, x):
    return self.pool(self.conv(x))


@keras.saving.register_keras_serializable(package="gflow")
class ResidualBlock(keras.layers.Layer):
  """x + F(x) with F = conv ∘ ELU ∘ norm ∘ conv ∘ ELU ∘ norm (see the module docstring)."""

  def __init__(self, filters, resample=None, dilation=1, num_levels=0, **kwargs):
    super().__init__(**kwargs)
    if resample not in (None, "down"):
      raise ValueError(f"resample must be None or 'down'; got {resample!r}.")
    self.filters, self.resample, self.dilation = filters, resample, dilation
    self.num_levels = num_levels

  def build(self, input_shape):
    c = input_shape[-1]
    p, d = self.dtype_policy, self.dilation
    conv = lambda f, k=3: TorchConv2D(f, k, dilation_rate=d if k > 1 else 1, dtype=p)
    self.norm1 = InstanceNormPlus(self.num_levels, dtype=p)
    self.shortcut = None
    if self.resample == "down" and d > 1:
      self.conv1, self.conv2 = conv(c), conv(self.filters)
      self.shortcut = conv(self.filters)
      mid = c
    elif self.resample == "down":
      self.conv1 = TorchConv2D(c, 3, dtype=p)
      self.conv2 = _ConvMeanPool(self.filters, 3, dtype=p)
      self.shortcut = _ConvMeanPool(self.filters, 1, dtype=p)
      mid = c
    else:
      self.conv1, self.conv2 = conv(self.filters), conv(self.filters)
      if self.filters != c:
        self.shortcut = conv(self.filters) if d > 1 else TorchConv2D(self.filters, 1, dtype=p)
      mid = self.filters
    self.norm2 = InstanceNormPlus(self.num_levels, dtype=p)
    hidden = (*input_shape[:-1], mid)
    self.norm1.build(input_shape)
    self.conv1.build(input_shape)
    self.norm2.build(hidden)
    self.conv2.build(hidden)
    if self.shortcut is not None:
      self.shortcut.build(input_shape)

  def call(self, x, levels=None):
    h = self.conv1(_elu(self.norm1(x, levels)))
    h = self.conv2(_elu(self.norm2(h, levels)))
    return (x if self.shortcut is None else self.shortcut(x)) + h

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "resample": self.resample,
            "dilation": self.dilation, "num_levels": self.num_levels}


class RCUBlock(keras.layers.Layer):
  """`blocks` residual units of `stages` × (ELU → 3x3 conv without bias)."""

  def __init__(self, blocks, stages, **kwargs):
    super().__init__(**kwargs)
    self.blocks, self.stages = blocks, stages

  def build(self, input_shape):
    c = input_shape[-1]
    self.convs = [[TorchConv2D(c, 3, use_bias=False, dtype=self.dtype_policy)
                   for _ in range(self.stages)] for _ in range(self.blocks)]
    for unit in self.convs:
      for conv in unit:
        conv.build(input_shape)

  def call(self, x):
    for unit in self.convs:
      residual = x
      for conv in unit:
        x = conv(_elu(x))
      x = x + residual
    return x


class CRPBlock(keras.layers.Layer):
  """ELU, then x += conv(maxpool₅(path)) for each of `stages` chained stages."""

  def __init__(self, stages, **kwargs):
    super().__init__(**kwargs)
    self.stages = stages
    self.pool = keras.layers.MaxPooling2D(5, strides=1, padding="same", dtype=self.dtype_policy)

  def build(self, input_shape):
    c = input_shape[-1]
    self.convs = [TorchConv2D(c, 3, use_bias=False, dtype=self.dtype_policy)
                  for _ in range(self.stages)]
    for conv in self.convs:
      conv.build(input_shape)

  def call(self, x):
    x = _elu(x)
    path = x
    for conv in self.convs:
      path = conv(self.pool(path))
      x = path + x
    return x


def _resize_aligned(x, size):
  if tuple(x.shape[1:3]) == tuple(size):
    return x
  return tf.cast(tf.raw_ops.ResizeBilinear(images=tf.cast(x, tf.float32), size=size,
                                           align_corners=True), x.dtype)


class MSFBlock(keras.layers.Layer):
  """Σᵢ upsample(conv₃ₓ₃(xᵢ)) at the finest input's resolution, `features` channels."""

  def __init__(self, features, **kwargs):
    super().__init__(**kwargs)
    self.features = features

  def build(self, input_shapes):
    self.convs = [TorchConv2D(self.features, 3, dtype=self.dtype_policy) for _ in input_shapes]
    for conv, shape in zip(self.convs, input_shapes):
      conv.build(shape)

  def call(self, xs, size):
    return sum(_resize_aligned(conv(x), size) for conv, x in zip(self.convs, xs))


@keras.saving.register_keras_serializable(package="gflow")
class RefineBlock(keras.layers.Layer):
  """RCU(2, 2) per input → MSF (several inputs) → CRP(2) → RCU(3 if `end` else 1, 2)."""

  def __init__(self, features, end=False, **kwargs):
    super().__init__(**kwargs)
    self.features, self.end = features, end

  def build(self, input_shapes):
    p = self.dtype_policy
    self.adapt = [RCUBlock(2, 2, dtype=p) for _ in input_shapes]
    for block, shape in zip(self.adapt, input_shapes):
      block.build(shape)
    out = (*input_shapes[0][:-1], self.features)
    self.msf = None
    if len(input_shapes) > 1:
      self.msf = MSFBlock(self.features, dtype=p)
      self.msf.build(input_shapes)
    elif input_shapes[0][-1] != self.features:
      raise ValueError(f"A one-input RefineBlock keeps its width: the input has "
                       f"{input_shapes[0][-1]} channels, features is {self.features}.")
    self.crp = CRPBlock(2, dtype=p)
    self.crp.build(out)
    self.output_rcu = RCUBlock(3 if self.end else 1, 2, dtype=p)
    self.output_rcu.build(out)

  def call(self, xs):
    hs = [block(x) for block, x in zip(self.adapt, xs)]
    h = self.msf(hs, size=tuple(xs[0].shape[1:3])) if self.msf is not None else hs[0]
    return self.output_rcu(self.crp(h))

  def get_config(self):
    return {**super().get_config(), "features": self.features, "end": self.end}
