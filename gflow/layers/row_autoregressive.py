"""Keras owner of a WaveFlow flow: the row-autoregressive affine map and its network."""

import numpy as np
import tensorflow as tf

from gflow.bijectors.row_autoregressive import RowAutoregressiveAffine
from gflow.layers.base import FlowLayer

__all__ = ["RowAutoregressiveLayer"]


class RowAutoregressiveLayer(FlowLayer):
  """`RowAutoregressiveAffine` over [N, H, W, 1] with `network` (a Keras layer, e.g.
  `gflow.nets.WaveNet2D`; it may be shared between flows).

  `conditioning_rows` is the row order of this flow's input relative to the
  conditioning given to the stack (the permutations of the flows before it), so
  every flow sees the conditioning rows of its own input rows.
  """

  def __init__(self, network, conditioning_rows=None, **kwargs):
    super().__init__(**kwargs)
    self.network = network
    self.conditioning_rows = (None if conditioning_rows is None
                              else np.asarray(conditioning_rows, np.int64))

  def build(self, input_shape):
    if input_shape[-1] != 1:
      raise ValueError(f"RowAutoregressiveLayer acts on [N, H, W, 1]; got {input_shape}.")
    if not self.network.built:
      self.network.build(tuple(input_shape))

  def _conditioning(self, conditioning):
    if conditioning is None or self.conditioning_rows is None:
      return conditioning
    return tf.gather(conditioning, self.conditioning_rows, axis=-3)

  def bijector(self, conditioning=None, training=False):
    return RowAutoregressiveAffine(self.network, self._conditioning(conditioning),
                                   name=self.name)

  def forward_and_log_det(self, x, event_ndims, training=False, conditioning=None):
    return self.bijector(conditioning, training).forward_and_log_det(x, event_ndims)

  def synthesize(self, z, conditioning=None):
    """The inverse x of latent z [N, H, W, 1], row by row with the network's row cache
    (`row_step`): H steps of one row of convolution each, exact for any height
    dilation. Falls back to the bijector's inverse for networks without a cache."""
    if not hasattr(self.network, "row_step"):
      return self.bijector(conditioning).inverse(z)
    cond = self._conditioning(conditioning)
    height = z.shape[1]
    if height is None:
      raise ValueError(f"{self.name} needs a known height to synthesise; got {z.shape}.")
    batch, width = tf.shape(z)[0], tf.shape(z)[2]
    weights = self.network.synthesis_weights()
    buffers = self.network.synthesis_buffers(batch, width, z.dtype)
    rows = tf.TensorArray(z.dtype, size=height)

    def step(i, previous, buffers, rows):
      out, buffers = self.network.row_step(previous, cond[:, i][:, None], buffers, weights)
      log_s, t = tf.split(tf.cast(out, z.dtype), 2, axis=-1)
      row = (z[:, i][:, None] - t) * tf.exp(-log_s)
      return i + 1, row, buffers, rows.write(i, row[:, 0])

    _, _, _, rows = tf.while_loop(
        lambda i, *_: i < height, step,
        [tf.constant(0), tf.zeros_like(z[:, :1]), buffers, rows])
    return tf.transpose(rows.stack(), [1, 0, 2, 3])
