"""A 2-D convolution with weight normalisation (Salimans & Kingma 2016)."""

import keras
import tensorflow as tf

__all__ = ["WeightNormConv2D"]


@keras.saving.register_keras_serializable(package="gflow")
class WeightNormConv2D(keras.layers.Layer):
  """Conv2D (padding "valid": pad the input first) with kernel g · v / ‖v‖, the norm
  over all axes but the output channel; g starts at ‖v‖, so the first kernel is v.

  `weight_norm=False` gives a plain kernel. `kernel()` is the effective kernel
  (fold it once before repeated use, e.g. in synthesis).
  """

  def __init__(self, filters, kernel_size=(1, 1), dilation_rate=(1, 1), weight_norm=True,
               kernel_initializer="glorot_uniform", **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = tuple(kernel_size)
    self.dilation_rate = tuple(dilation_rate)
    self.weight_norm = weight_norm
    self.kernel_initializer = keras.initializers.get(kernel_initializer)

  def build(self, input_shape):
    shape = (*self.kernel_size, input_shape[-1], self.filters)
    self.v = self.add_weight(name="v", shape=shape, initializer=self.kernel_initializer)
    if self.weight_norm:
      norm = keras.ops.convert_to_numpy(keras.ops.sqrt(keras.ops.sum(
          keras.ops.square(self.v), axis=(0, 1, 2))))
      self.g = self.add_weight(name="g", shape=(self.filters,),
                               initializer=keras.initializers.Constant(norm))
    self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

  def kernel(self):
    v = tf.convert_to_tensor(self.v)
    if not self.weight_norm:
      return v
    norm = tf.sqrt(tf.reduce_sum(tf.square(v), axis=[0, 1, 2]) + 1e-12)
    return v * (tf.convert_to_tensor(self.g) / norm)

  def call(self, x):
    kernel = tf.cast(self.kernel(), self.compute_dtype)
    # tf.nn.convolution (not conv2d): its dilated gradients exist on the CPU in float64 too.
    y = tf.nn.convolution(x, kernel, padding="VALID", dilations=self.dilation_rate)
    return y + tf.cast(self.bias, self.compute_dtype)

  def compute_output_shape(self, input_shape):
    b, h, w, _ = input_shape
    kh, kw = [(k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate)]
    return (b, None if h is None else h - kh + 1, None if w is None else w - kw + 1, self.filters)

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
            "dilation_rate": self.dilation_rate, "weight_norm": self.weight_norm,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}
