"""ActNorm: a per-channel affine map with data-dependent initialisation."""

import tensorflow as tf
import tensorflow_probability as tfp

from gflow.bijectors import _checks

tfb = tfp.bijectors

__all__ = ["ActNorm", "actnorm_init_from_data"]


class ActNorm(tfb.Bijector):
  """Per-channel affine map y = exp(log_scale) ⊙ x + shift (Kingma & Dhariwal 2018).

  Inverse x = (y − shift) ⊙ exp(−log_scale).  log|det J| = Σ_c log_scale_c per
  position, so H·W·Σ_c log_scale_c for an NHWC image (TFP sums over the extra
  event dimensions).

  The parameters are tensors (or variables) of shape `[C]`; the Keras layer
  `gflow.layers.ActNormLayer` owns them and sets them from data with
  `actnorm_init_from_data` before training.
  """

  def __init__(self, shift, log_scale, validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "ActNorm") as name:
      self._shift = tf.convert_to_tensor(shift, name="shift")
      self._log_scale = tf.convert_to_tensor(
          log_scale, dtype=self._shift.dtype, name="log_scale")
      if self._shift.shape.rank != 1 or self._shift.shape != self._log_scale.shape:
        raise ValueError(
            "ActNorm needs `shift` and `log_scale` of one shape [C]; got "
            f"{self._shift.shape} and {self._log_scale.shape}.")
      super().__init__(
          forward_min_event_ndims=1,
          is_constant_jacobian=True,
          validate_args=validate_args,
          dtype=self._shift.dtype,
          parameters=parameters,
          name=name)

  @property
  def shift(self):
    return self._shift

  @property
  def log_scale(self):
    return self._log_scale

  def _forward(self, x):
    _checks.channels(self, x, self._shift.shape[0])
    return x * tf.exp(self._log_scale) + self._shift

  def _inverse(self, y):
    _checks.channels(self, y, self._shift.shape[0])
    return (y - self._shift) * tf.exp(-self._log_scale)

  def _forward_log_det_jacobian(self, x):
    return tf.broadcast_to(tf.reduce_sum(self._log_scale), tf.shape(x)[:-1])


def actnorm_init_from_data(x, epsilon=1e-6):
  """(shift, log_scale) that map `x` to zero mean, unit variance per channel.

  Statistics are over every axis but the last, and over all replicas when
  called inside `strategy.run` (a sum all-reduce of counts, sums and squares),
  so every replica computes the statistics of the global batch.
  """
  x = tf.convert_to_tensor(x)
  axes = list(range(x.shape.rank - 1))
  count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), x.dtype)
  stats = [count, tf.reduce_sum(x, axes), tf.reduce_sum(tf.square(x), axes)]
  ctx = tf.distribute.get_replica_context()
  if ctx is not None and ctx.num_replicas_in_sync > 1:
    stats = ctx.all_reduce(tf.distribute.ReduceOp.SUM, stats)
  count, total, total_sq = stats
  mean = total / count
  var = tf.maximum(total_sq / count - tf.square(mean), 0.)
  log_scale = -0.5 * tf.math.log(var + epsilon)
  return -mean * tf.exp(log_scale), log_scale
