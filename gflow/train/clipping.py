"""Gradient clipping by the global norm, summed as one reduction.

`clip_by_global_norm(grads, clip_norm)` returns what `tf.clip_by_global_norm` returns:
each gradient times clip_norm / max(‖grads‖, clip_norm) (NaN everywhere when the norm
is not finite), and the norm, computing the norm's sum once.

XLA rewrites a sum of scalars (TensorFlow's `AddN`, or a reduction of the stacked
values) into scalar additions and, cheap as they look, fuses a copy of them into every
operation that reads the result. A step's NaN/Inf check and gradient clipping are
such sums over every variable, read by every variable's update: with n variables the
compiled step held about 3n copies of an n-term sum. The small DenseFlow of
`configs/denseflow.py:digits` at 32x32x3 (~360 variables): 398,000 scalar additions, an optimised
program of 898,587 HLO lines (59,249 before), 3.2 minutes to compile on this CPU; with
the sums computed once (`total`): 106,244 lines, 44 s (`benchmarks/README.md`).
"""

import tensorflow as tf

from gflow.xla_context import in_xla_cluster
from gflow.train.chunked_calls import call_in_chunks

__all__ = ["clip_by_global_norm", "global_norm", "total"]


def total(values):
  """The sum of scalar tensors, computed once. Inside XLA it is a dot product with
  ones: XLA rewrites a sum (`AddN`, or a reduction of the stacked values) into scalar
  additions and fuses them into every reader, but keeps a dot as its own kernel."""
  stacked = tf.stack(list(values))
  if in_xla_cluster():
    return tf.tensordot(stacked, tf.ones_like(stacked), 1)
  return tf.reduce_sum(stacked)


def _sum_of_squares(rows):
  return total(tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t, in rows)


def global_norm(grads):
  """‖grads‖ in float32 over the gradients that are not None."""
  rows = [(g.values if isinstance(g, tf.IndexedSlices) else g,) for g in grads
          if g is not None]
  if not rows:
    return tf.constant(0.0)
  return tf.sqrt(total(call_in_chunks(_sum_of_squares, rows)))


def clip_by_global_norm(grads, clip_norm):
  """(grads scaled by clip_norm / max(norm, clip_norm), norm), as tf.clip_by_global_norm:
  None stays None, and a norm that is not finite makes every gradient NaN."""
  norm = global_norm(grads)
  clip_norm = tf.cast(clip_norm, tf.float32)
  scale = clip_norm / tf.maximum(norm, clip_norm) + (norm - norm)  # NaN if norm is not

  def scaled(g):
    if g is None:
      return None
    if isinstance(g, tf.IndexedSlices):
      return tf.IndexedSlices(g.values * tf.cast(scale, g.dtype), g.indices, g.dense_shape)
    return g * tf.cast(scale, g.dtype)
  return [scaled(g) for g in grads], norm
