"""A Conv2D initialised as PyTorch initialises `nn.Conv2d` (for ports of PyTorch models)."""

import math

import keras

from gflow.nets.conv2d import Conv2D

__all__ = ["TorchConv2D"]


@keras.saving.register_keras_serializable(package="gflow")
class TorchConv2D(Conv2D):
  """`gflow.nets.Conv2D` (a `keras.layers.Conv2D`) with PyTorch's default initialisation:
  kernel and bias uniform in ±1/√fan_in (kaiming_uniform with a = √5), fan_in = in_channels·k_h·k_w.

  Reference implementations (NCSNv2, …) train from this initialisation; Keras'
  Glorot kernel and zero bias start a deep score network elsewhere.
  """

  def __init__(self, filters, kernel_size, **kwargs):
    kwargs.setdefault("padding", "same")
    kwargs.setdefault("kernel_initializer",
                      keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"))
    super().__init__(filters, kernel_size, **kwargs)

  def build(self, input_shape):
    fan_in = input_shape[-1] * math.prod(self.kernel_size)
    bound = 1 / math.sqrt(fan_in)
    self.bias_initializer = keras.initializers.RandomUniform(-bound, bound)
    super().build(input_shape)
