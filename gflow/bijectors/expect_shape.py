"""ExpectShape: the identity, refusing inputs whose event shape is not the model's."""

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["ExpectShape"]


class ExpectShape(tfb.Bijector):
  """x ↦ x on events of `event_shape`; any other static shape is a ValueError.

  Inverse: the identity (unchecked).  log|det J| = 0.
  First in a model's chain, it names the shape a user must give, where the layer
  that would fail later (after squeezes) could only name its own.
  """

  def __init__(self, event_shape, owner="the model", validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "ExpectShape") as name:
      self._expected = tf.TensorShape(event_shape)
      self._owner = owner
      super().__init__(forward_min_event_ndims=self._expected.rank, is_constant_jacobian=True,
                       validate_args=validate_args, parameters=parameters, name=name)

  def _check(self, x):
    n = self._expected.rank
    shape = x.shape
    if shape.rank is not None and (shape.rank < n or
                                   not shape[-n:].is_compatible_with(self._expected)):
      raise ValueError(f"{self._owner} expects values of shape [..., "
                       f"{', '.join(map(str, self._expected))}]; got {shape}.")
    return x

  def _forward(self, x):
    return self._check(x)

  def _inverse(self, y):
    return y

  def _batch_zeros(self, x):
    return tf.zeros(tf.shape(x)[:tf.rank(x) - self._expected.rank], x.dtype)

  def _forward_log_det_jacobian(self, x):
    return self._batch_zeros(self._check(x))

  def _inverse_log_det_jacobian(self, y):
    return self._batch_zeros(y)
