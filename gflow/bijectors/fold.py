"""Fold a waveform column-major into an h × T/h matrix (WaveFlow's squeeze)."""

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["Fold", "fold", "unfold"]


def fold(x, height):
  """[..., T, C] → [..., height, T/height, C] with sample t at row t mod height, column
  t // height."""
  shape = tf.shape(x)
  batch, t, c = shape[:-2], shape[-2], shape[-1]
  cols = tf.concat([batch, [t // height, height, c]], 0)
  x = tf.reshape(x, cols)
  rank = x.shape.rank
  perm = list(range(rank - 3)) + [rank - 2, rank - 3, rank - 1]
  return tf.transpose(x, perm)


def unfold(y):
  """The inverse of `fold`: [..., h, W, C] → [..., h·W, C]."""
  rank = y.shape.rank
  perm = list(range(rank - 3)) + [rank - 2, rank - 3, rank - 1]
  y = tf.transpose(y, perm)
  shape = tf.shape(y)
  return tf.reshape(y, tf.concat([shape[:-3], [shape[-3] * shape[-2], shape[-1]]], 0))


class Fold(tfb.Bijector):
  """Waveform [..., T, 1] ↦ [..., h, T/h, 1], sample t at row t mod h, column t // h
  (Ping et al. 2020). Inverse: read the columns back in order.  log|det J| = 0."""

  def __init__(self, height, validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "Fold") as name:
      if height < 1:
        raise ValueError(f"height must be >= 1; got {height}.")
      self._height = height
      super().__init__(forward_min_event_ndims=2, inverse_min_event_ndims=3,
                       is_constant_jacobian=True, validate_args=validate_args,
                       parameters=parameters, name=name)

  @property
  def height(self):
    return self._height

  def _forward(self, x):
    t = x.shape[-2]
    if t is not None and t % self._height:
      raise ValueError(f"{self.name}: length {t} is not a multiple of the height "
                       f"{self._height}; trim the waveform first.")
    return fold(x, self._height)

  def _inverse(self, y):
    return unfold(y)

  def _forward_event_shape(self, shape):
    t = shape[-2]
    return shape[:-2].concatenate([self._height, None if t is None else t // self._height,
                                   shape[-1]])

  def _inverse_event_shape(self, shape):
    h, w = shape[-3], shape[-2]
    return shape[:-3].concatenate([None if h is None or w is None else h * w, shape[-1]])

  def _forward_event_shape_tensor(self, shape):
    return tf.concat([shape[:-2], [self._height, shape[-2] // self._height, shape[-1]]], 0)

  def _inverse_event_shape_tensor(self, shape):
    return tf.concat([shape[:-3], [shape[-3] * shape[-2], shape[-1]]], 0)

  def _forward_log_det_jacobian(self, x):
    return tf.zeros(tf.shape(x)[:-2], x.dtype)
