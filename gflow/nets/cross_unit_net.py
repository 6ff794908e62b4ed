"""The noise network g of DenseFlow's cross-unit coupling."""

import keras

from gflow.nets.conv2d import Conv2D

__all__ = ["CrossUnitNet"]


@keras.saving.register_keras_serializable(package="gflow")
class CrossUnitNet(keras.layers.Layer):
  """g(c): 3x3 conv to 4·C_in → ReLU → zero-initialised 1x1 conv to 2·growth ([μ, raw]).

  The input c is the concatenation of a DenseFlow block's earlier
  representations; the output parameterises the noise μ + σ ⊙ e with
  log σ = 2·tanh(raw/2) (Grcić et al. 2021). Starting at zero, the noise
  starts white.
  """

  def __init__(self, growth, **kwargs):
    super().__init__(**kwargs)
    if not isinstance(growth, int) or growth < 1:
      raise ValueError(f"CrossUnitNet needs a positive int growth; got {growth!r}.")
    self.growth = growth
    self.out = Conv2D(2 * growth, 1, kernel_initializer="zeros", dtype=self.dtype_policy)
    self.hidden = None

  def build(self, input_shape):
    c = input_shape[-1]
    if c is None:
      raise ValueError(f"CrossUnitNet needs a known channel count; got {input_shape}.")
    self.hidden = Conv2D(4 * c, 3, padding="same", activation="relu", dtype=self.dtype_policy)
    self.hidden.build(input_shape)
    self.out.build(tuple(input_shape[:-1]) + (4 * c,))

  def call(self, x):
    return self.out(self.hidden(x))

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (2 * self.growth,)

  def get_config(self):
    return {**super().get_config(), "growth": self.growth}
