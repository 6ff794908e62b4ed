"""Channel swap: exchange the two halves of the channel axis."""

import tensorflow as tf
import tensorflow_probability as tfp

from gflow.bijectors import _checks

tfb = tfp.bijectors

__all__ = ["ChannelSwap"]


class ChannelSwap(tfb.Bijector):
  """[x₁ (⌈C/2⌉ channels), x₂ (⌊C/2⌋)] ↦ [x₂, x₁], so the next coupling transforms x₁.

  Inverse [y₁ (⌊C/2⌋), y₂] ↦ [y₂, y₁].  log|det J| = 0 (a permutation).
  DenseFlow ends every glow-like module with it (Grcić et al. 2021).
  """

  def __init__(self, validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "ChannelSwap") as name:
      super().__init__(
          forward_min_event_ndims=1,
          is_constant_jacobian=True,
          validate_args=validate_args,
          parameters=parameters,
          name=name)

  def _halves(self, x, first):
    _checks.rank_at_least(self, x, 1)
    c = x.shape[-1]
    if c is None or c < 2:
      raise ValueError(f"{self.name} needs a known channel count >= 2; got shape {x.shape}.")
    k = c - c // 2 if first == "ceil" else c // 2
    return tf.split(x, [k, c - k], axis=-1)

  def _forward(self, x):
    x1, x2 = self._halves(x, "ceil")
    return tf.concat([x2, x1], axis=-1)

  def _inverse(self, y):
    y1, y2 = self._halves(y, "floor")
    return tf.concat([y2, y1], axis=-1)

  def _forward_log_det_jacobian(self, x):
    return tf.zeros(tf.shape(x)[:-1], x.dtype)
