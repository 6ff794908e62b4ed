"""Mel spectrogram frames → one conditioning vector per audio sample (WaveFlow)."""

import keras
import tensorflow as tf

__all__ = ["MelUpsampler"]


@keras.saving.register_keras_serializable(package="gflow")
class MelUpsampler(keras.layers.Layer):
  """mel [N, frames, n_mels] → [N, frames · Π strides, n_mels].

  The spectrogram is an image (bands × frames, one channel) upsampled along time
  by transposed convolutions of kernel (3 bands, 2·stride frames), stride
  (1, stride), each followed by LeakyReLU(0.4) (WaveFlow: strides 16, 16 = the
  hop of 256).
  """

  def __init__(self, strides=(16, 16), **kwargs):
    super().__init__(**kwargs)
    if not strides or min(strides) < 1:
      raise ValueError(f"strides must be positive; got {list(strides)}.")
    self.strides = tuple(strides)
    self.convs = [keras.layers.Conv2DTranspose(1, (3, 2 * s), strides=(1, s), padding="same",
                                               dtype=self.dtype_policy) for s in self.strides]

  @property
  def factor(self):
    f = 1
    for s in self.strides:
      f *= s
    return f

  def build(self, input_shape):
    n, frames, bands = input_shape
    shape = (n, bands, frames, 1)
    for s, conv in zip(self.strides, self.convs):
      conv.build(shape)
      shape = (n, bands, None if shape[2] is None else shape[2] * s, 1)

  def call(self, mel):
    x = tf.transpose(mel, [0, 2, 1])[..., None]  # [N, bands, frames, 1]
    for conv in self.convs:
      x = tf.nn.leaky_relu(conv(x), 0.4)
    return tf.transpose(x[..., 0], [0, 2, 1])

  def compute_output_shape(self, input_shape):
    n, frames, bands = input_shape
    return (n, None if frames is None else frames * self.factor, bands)

  def get_config(self):
    return {**super().get_config(), "strides": self.strides}
