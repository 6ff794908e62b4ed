"""Squeeze: 2x2 space-to-depth on NHWC images."""

import tensorflow as tf
import tensorflow_probability as tfp

from gflow.bijectors import _checks

tfb = tfp.bijectors

__all__ = ["Squeeze"]


class Squeeze(tfb.Bijector):
  """Space-to-depth [H, W, C] → [H/f, W/f, C·f²] in Glow's channel order (c, dy, dx).

  Inverse: depth-to-space.  log|det J| = 0 (a permutation of coordinates).
  """

  def __init__(self, factor=2, validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "Squeeze") as name:
      if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"Squeeze factor must be a positive int; got {factor!r}.")
      self._factor = factor
      super().__init__(
          forward_min_event_ndims=3,
          is_constant_jacobian=True,
          validate_args=validate_args,
          parameters=parameters,
          name=name)

  @property
  def factor(self):
    return self._factor

  def _check(self, shape, direction):
    h, w, c = shape[-3:]
    f = self._factor
    if direction == "forward" and ((h is not None and h % f) or (w is not None and w % f)):
      raise ValueError(f"Squeeze by {f} needs height and width divisible by {f}; "
                       f"got event shape {shape[-3:]}.")
    if direction == "inverse" and c is not None and c % (f * f):
      raise ValueError(f"Unsqueeze by {f} needs channels divisible by {f * f}; "
                       f"got event shape {shape[-3:]}.")

  def _forward(self, x):
    _checks.rank_at_least(self, x, 3)
    self._check(x.shape, "forward")
    f = self._factor
    batch = tf.shape(x)[:-3]
    h, w, c = x.shape[-3:]
    y = tf.reshape(x, [-1, h // f, f, w // f, f, c])
    y = tf.transpose(y, [0, 1, 3, 5, 2, 4])
    return tf.reshape(y, tf.concat([batch, [h // f, w // f, c * f * f]], 0))

  def _inverse(self, y):
    _checks.rank_at_least(self, y, 3)
    self._check(y.shape, "inverse")
    f = self._factor
    batch = tf.shape(y)[:-3]
    h, w, c = y.shape[-3:]
    x = tf.reshape(y, [-1, h, w, c // (f * f), f, f])
    x = tf.transpose(x, [0, 1, 4, 2, 5, 3])
    return tf.reshape(x, tf.concat([batch, [h * f, w * f, c // (f * f)]], 0))

  def _forward_log_det_jacobian(self, x):
    return tf.zeros(tf.shape(x)[:-3], x.dtype)

  def _forward_event_shape(self, s):
    f = self._factor
    return tf.TensorShape([None if d is None else d // f for d in s[-3:-1]]
                          + [None if s[-1] is None else s[-1] * f * f])

  def _inverse_event_shape(self, s):
    f = self._factor
    return tf.TensorShape([None if d is None else d * f for d in s[-3:-1]]
                          + [None if s[-1] is None else s[-1] // (f * f)])

  def _forward_event_shape_tensor(self, s):
    f = self._factor
    return tf.stack([s[-3] // f, s[-2] // f, s[-1] * f * f])

  def _inverse_event_shape_tensor(self, s):
    f = self._factor
    return tf.stack([s[-3] * f, s[-2] * f, s[-1] // (f * f)])
