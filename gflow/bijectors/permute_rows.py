"""A fixed permutation of the rows (height axis) of [..., H, W, C] events."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["PermuteRows", "waveflow_permutations"]


def waveflow_permutations(height, num_flows):
  """WaveFlow's row permutations after each flow: reverse the rows for the first half
  of the flows, reverse each half of the rows for the rest (Ping et al. 2020)."""
  rows = np.arange(height)
  half = height // 2
  flips = np.concatenate([rows[:half][::-1], rows[half:][::-1]])
  return [rows[::-1].copy() if k < num_flows // 2 else flips.copy() for k in range(num_flows)]


class PermuteRows(tfb.Bijector):
  """y[..., i, :, :] = x[..., perm[i], :, :].  Inverse with argsort(perm).  log|det J| = 0."""

  def __init__(self, permutation, validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "PermuteRows") as name:
      perm = np.asarray(permutation)
      if perm.ndim != 1 or sorted(perm.tolist()) != list(range(len(perm))):
        raise ValueError(f"permutation must hold each of 0 … n−1 once; got {perm.tolist()}.")
      self._perm = perm
      self._inverse_perm = np.argsort(perm)
      super().__init__(forward_min_event_ndims=3, is_constant_jacobian=True,
                       validate_args=validate_args, parameters=parameters, name=name)

  def _forward(self, x):
    return tf.gather(x, self._perm, axis=-3)

  def _inverse(self, y):
    return tf.gather(y, self._inverse_perm, axis=-3)

  def _forward_log_det_jacobian(self, x):
    return tf.zeros(tf.shape(x)[:-3], x.dtype)
