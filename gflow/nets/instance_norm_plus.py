"""InstanceNorm++ (Song & Ermon 2019): instance normalisation that keeps the channel means."""

import keras
import tensorflow as tf

__all__ = ["InstanceNormPlus"]


@keras.saving.register_keras_serializable(package="gflow")
class InstanceNormPlus(keras.layers.Layer):
  """y = γ ⊙ ((x − μ)/√(s² + ε) + α ⊙ (μ − m)/√(v + ε)) + β per channel.

  μ, s² are each channel's spatial mean and variance (per example); m, v the mean
  and (unbiased) variance of the C means, so the relative brightness of the
  channels that plain instance norm erases is put back through α. α, γ start at
  N(1, 0.02²), β at 0. With `num_levels` > 0, α, γ, β are per noise level
  (`call(x, levels)`, NCSN's conditional InstanceNorm++).
  """

  def __init__(self, num_levels=0, bias=True, epsilon=1e-5, **kwargs):
    super().__init__(**kwargs)
    if num_levels < 0:
      raise ValueError(f"num_levels must be >= 0; got {num_levels}.")
    self.num_levels = int(num_levels)
    self.bias = bias
    self.epsilon = epsilon

  def build(self, input_shape):
    c = input_shape[-1]
    if c is None or c < 2:
      raise ValueError(f"InstanceNormPlus needs >= 2 known channels; got {input_shape}.")
    shape = (self.num_levels, c) if self.num_levels else (c,)
    near_one = keras.initializers.RandomNormal(1.0, 0.02)
    self.alpha = self.add_weight(name="alpha", shape=shape, initializer=near_one)
    self.gamma = self.add_weight(name="gamma", shape=shape, initializer=near_one)
    self.beta = (self.add_weight(name="beta", shape=shape, initializer="zeros")
                 if self.bias else None)

  def _param(self, w, levels):
    if self.num_levels:
      return tf.gather(w, levels)[:, None, None, :]
    return w

  def call(self, x, levels=None):
    if self.num_levels and levels is None:
      raise ValueError(f"{self.name} is conditional on {self.num_levels} noise levels: "
                       "call it with levels.")
    x32 = tf.cast(x, tf.float32)
    mean, var = tf.nn.moments(x32, axes=[1, 2], keepdims=True)
    h = (x32 - mean) / tf.sqrt(var + self.epsilon)
    means = mean[:, 0, 0, :]
    m, v = tf.nn.moments(means, axes=[-1], keepdims=True)
    c = tf.cast(tf.shape(means)[-1], tf.float32)
    v = v * c / (c - 1)  # unbiased, as torch.var
    scaled = ((means - m) / tf.sqrt(v + self.epsilon))[:, None, None, :]
    alpha, gamma = (tf.cast(self._param(w, levels), tf.float32)
                    for w in (self.alpha, self.gamma))
    out = gamma * (h + alpha * scaled)
    if self.beta is not None:
      out = out + tf.cast(self._param(self.beta, levels), tf.float32)
    return tf.cast(out, self.compute_dtype)

  def get_config(self):
    return {**super().get_config(), "num_levels": self.num_levels, "bias": self.bias,
            "epsilon": self.epsilon}
