"""Affine map autoregressive along the height of [..., H, W, 1] events (WaveFlow's flow)."""

import tensorflow as tf
import tensorflow_probability as tfp

from gflow.bijectors import _checks

tfb = tfp.bijectors

__all__ = ["RowAutoregressiveAffine", "shift_down"]


def shift_down(x):
  """Rows moved down by one, a zero row on top: row i of the result is row i − 1 of x."""
  return tf.pad(x, [[0, 0]] * (x.shape.rank - 3) + [[1, 0], [0, 0], [0, 0]])[..., :-1, :, :]


class RowAutoregressiveAffine(tfb.Bijector):
  """z_i = x_i · exp(log s_i) + t_i, (log s, t)_i = NN(x_<i, c) for every row i of x
  [..., H, W, 1] (row 0 sees only the conditioning c; Ping et al. 2020).

  Inverse row by row: x_i = (z_i − t_i(x_<i, c)) · exp(−log s_i), H network passes.
  log|det J| = Σ log s.  The network maps the rows shifted down by one
  ([..., H, W, 1], row i holds x_{i−1}) and the conditioning to [..., H, W, 2]
  (log s, t); it must be causal along the height.
  """

  def __init__(self, network, conditioning=None, validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "RowAutoregressiveAffine") as name:
      if not callable(network):
        raise TypeError(f"network must be callable (a Keras layer); got {network!r}.")
      self._network = network
      self._conditioning = conditioning
      super().__init__(forward_min_event_ndims=3, validate_args=validate_args,
                       parameters=parameters, name=name)

  def _params(self, x):
    _checks.floating(self, x)
    _checks.channels(self, x, 1)
    h = self._network(shift_down(x), conditioning=self._conditioning)
    h = tf.cast(h, x.dtype)
    log_s, t = tf.split(h, 2, axis=-1)
    return log_s, t

  def _forward(self, x):
    log_s, t = self._params(x)
    return x * tf.exp(log_s) + t

  def _forward_log_det_jacobian(self, x):
    log_s, _ = self._params(x)
    return tf.reduce_sum(log_s, axis=[-3, -2, -1])

  def forward_and_log_det(self, x, event_ndims):
    """(forward(x), fldj(x)) with one network pass."""
    log_s, t = self._params(x)
    axes = list(range(-event_ndims, 0))
    return x * tf.exp(log_s) + t, tf.reduce_sum(log_s, axis=axes)

  def _inverse(self, z):
    """Row i from the rows above it: H passes of the whole network (the reference
    inverse; WaveFlow's synthesis caches each layer's rows instead)."""
    height = z.shape[-3]
    if height is None:
      raise ValueError(f"{self.name} needs a known height to invert; got {z.shape}.")
    rows = tf.range(height)[:, None, None]

    def row(i, x):
      log_s, t = self._params(x)
      new = (z - t) * tf.exp(-log_s)
      return i + 1, tf.where(tf.equal(rows, i), new, x)
    _, x = tf.while_loop(lambda i, _: i < height, row, [tf.constant(0), tf.zeros_like(z)])
    return x
