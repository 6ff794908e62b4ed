"""WaveFlow's coupling network: a 2-D dilated WaveNet, causal along the height."""

import keras
import tensorflow as tf

from gflow.nets.conv2d import Conv2D
from gflow.nets.modulation import NO_MODULATION
from gflow.nets.weight_norm import WeightNormConv2D

__all__ = ["WaveNet2D", "HEIGHT_DILATIONS"]

# Height dilations of the 8 residual layers for each squeeze height h (the official
# code's table): the receptive field along the height then covers h rows.
HEIGHT_DILATIONS = {
    8: (1, 1, 1, 1, 1, 1, 1, 1),
    16: (1, 1, 1, 1, 1, 1, 1, 1),
    32: (1, 2, 4, 1, 2, 4, 1, 2),
    64: (1, 2, 4, 8, 16, 1, 2, 4),
    128: (1, 2, 4, 8, 16, 32, 64, 1),
}


@keras.saving.register_keras_serializable(package="gflow")
class WaveNet2D(keras.layers.Layer):
  """x [N, H, W, 1] (rows shifted down by the flow), c [N, H, W, n_mels] → [N, H, W, 2].

  1x1 input conv to `channels`; `layers` gated residual layers, each a 3x3 conv
  causal along H (padding (k−1)·d_h rows on top) and centred along W (dilation
  2^j), plus a 1x1 projection of c into the gates, tanh · sigmoid, then a 1x1
  conv to a residual and a skip half; the summed skips go through a
  zero-initialised 1x1 conv to (log s, t), so the flow starts as the identity.
  Convolutions use weight normalisation (`weight_norm`).

  Shared by several flows (`gflow.nets.sharing`), `head=False` builds the body
  only: `features` gives the summed skips [N, H, W, channels]; a flow's
  modulation biases layer j's gates (point j, 2·channels) and gates its
  residual branch (point j, channels), as in NanoFlow's audio code.
  """

  head_kernel_size = 1
  causal_height = True  # a projection head must not look at later rows

  def __init__(self, channels=64, conditioning_channels=80, layers=8, kernel_size=3,
               height_dilations=None, weight_norm=True, head=True, **kwargs):
    super().__init__(**kwargs)
    height_dilations = tuple(height_dilations or (1,) * layers)
    if len(height_dilations) != layers:
      raise ValueError(f"need one height dilation per layer ({layers}); got "
                       f"{list(height_dilations)}.")
    if channels < 1 or layers < 1 or kernel_size < 1:
      raise ValueError(f"channels, layers and kernel_size must be >= 1; got {channels}, "
                       f"{layers}, {kernel_size}.")
    self.channels, self.conditioning_channels = channels, conditioning_channels
    self.num_layers, self.kernel_size = layers, kernel_size
    self.height_dilations, self.weight_norm = height_dilations, weight_norm
    policy = self.dtype_policy
    conv = lambda *a, **k: WeightNormConv2D(*a, weight_norm=weight_norm, dtype=policy, **k)  # noqa: E731
    self.input_conv = conv(channels)
    self.dilated = [conv(2 * channels, (kernel_size, kernel_size), (dh, 2 ** j))
                    for j, dh in enumerate(height_dilations)]
    self.mel_proj = [conv(2 * channels) for _ in range(layers)]
    self.out_proj = [conv(2 * channels) for _ in range(layers)]
    self.with_head = head
    self.head = Conv2D(2, 1, kernel_initializer="zeros", dtype=policy) if head else None

  @property
  def feature_channels(self):
    return self.channels

  @property
  def modulation_widths(self):
    return {"bias": (2 * self.channels,) * self.num_layers,
            "gate": (self.channels,) * self.num_layers}

  def build(self, input_shape):
    n, h, w, _ = input_shape
    hidden = (n, h, w, self.channels)
    self.input_conv.build(tuple(input_shape))
    for dilated, mel, out in zip(self.dilated, self.mel_proj, self.out_proj):
      dilated.build(hidden)
      mel.build((n, h, w, self.conditioning_channels))
      out.build(hidden)
    if self.head is not None:
      self.head.build(hidden)

  def _pad(self, x, j):
    """Causal along H, centred along W, for layer j."""
    dh, dw = self.height_dilations[j], 2 ** j
    k = self.kernel_size
    ph, pw = (k - 1) * dh, (k - 1) * dw
    return tf.pad(x, [[0, 0], [ph, 0], [pw // 2, pw - pw // 2], [0, 0]])

  def features(self, x, conditioning=None, modulation=None, training=None):
    """The summed skips [N, H, W, channels] before the head."""
    if conditioning is None:
      raise ValueError(f"{self.name} needs the conditioning input (the upsampled mel).")
    m = modulation or NO_MODULATION
    x = self.input_conv(x)
    conditioning = tf.cast(conditioning, x.dtype)
    skips = 0.
    for j in range(self.num_layers):
      gates = m.bias(j, self.dilated[j](self._pad(x, j)) + self.mel_proj[j](conditioning))
      content, gate = tf.split(gates, 2, axis=-1)
      res, skip = tf.split(self.out_proj[j](tf.tanh(content) * tf.sigmoid(gate)), 2, axis=-1)
      x = x + m.gate(j, res)
      skips = skips + skip
    return skips

  def call(self, x, conditioning=None):
    if self.head is None:
      raise ValueError(f"{self.name} was built without its head (head=False): call "
                       "features(), or share it through gflow.nets.sharing.")
    return self.head(self.features(x, conditioning))

  # -- synthesis, one row at a time -------------------------------------------------------
  def synthesis_weights(self):
    """Every kernel with its weight norm folded in, computed once before synthesis."""
    def kb(conv):
      return conv.kernel(), tf.convert_to_tensor(conv.bias)
    weights = {"input": kb(self.input_conv), "dilated": [kb(c) for c in self.dilated],
               "mel": [kb(c) for c in self.mel_proj], "out": [kb(c) for c in self.out_proj]}
    if self.head is not None:
      weights["head"] = (tf.convert_to_tensor(self.head.kernel),
                         tf.convert_to_tensor(self.head.bias))
    return weights

  def synthesis_buffers(self, batch, width, dtype=tf.float32):
    """Zero buffers: layer j keeps its last (k − 1)·d_h + 1 input rows, the causal
    receptive field of its height-dilated convolution (the zeros are the padding)."""
    return [tf.zeros([batch, (self.kernel_size - 1) * dh + 1, width, self.channels], dtype)
            for dh in self.height_dilations]

  def row_step(self, x_row, cond_row, buffers, weights):
    """The output row [N, 1, W, 2] for the next input row x_row [N, 1, W, 1] (the flow's
    shifted input) and its conditioning row, given the buffers of the rows before it;
    returns (output row, updated buffers). One row of convolution per layer."""
    skips, buffers = self.row_step_features(x_row, cond_row, buffers, weights)
    return _conv(skips, weights["head"]), buffers

  def row_step_features(self, x_row, cond_row, buffers, weights, modulation=None):
    """`row_step` before the head: (summed skips [N, 1, W, channels], updated buffers)."""
    m = modulation or NO_MODULATION
    conv = _conv
    h = conv(x_row, weights["input"])
    cond_row = tf.cast(cond_row, h.dtype)
    skips, new_buffers = 0., []
    for j, dh in enumerate(self.height_dilations):
      buffer = tf.concat([buffers[j][:, 1:], h], axis=1)
      new_buffers.append(buffer)
      pw = (self.kernel_size - 1) * 2 ** j
      padded = tf.pad(buffer, [[0, 0], [0, 0], [pw // 2, pw - pw // 2], [0, 0]])
      gates = m.bias(j, conv(padded, weights["dilated"][j], (dh, 2 ** j))
                     + conv(cond_row, weights["mel"][j]))
      content, gate = tf.split(gates, 2, axis=-1)
      res, skip = tf.split(conv(tf.tanh(content) * tf.sigmoid(gate), weights["out"][j]), 2,
                           axis=-1)
      h = h + m.gate(j, res)
      skips = skips + skip
    return skips, new_buffers

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (2,)

  def get_config(self):
    return {**super().get_config(), "channels": self.channels,
            "conditioning_channels": self.conditioning_channels, "layers": self.num_layers,
            "kernel_size": self.kernel_size, "height_dilations": self.height_dilations,
            "weight_norm": self.weight_norm, "head": self.with_head}


def _conv(x, kernel_and_bias, dilations=(1, 1)):
  """A VALID convolution of x with a (kernel, bias) pair, in x's dtype."""
  kernel, bias = kernel_and_bias
  return tf.nn.convolution(x, tf.cast(kernel, x.dtype), padding="VALID",
                           dilations=dilations) + tf.cast(bias, x.dtype)
