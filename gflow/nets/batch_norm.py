"""BatchNormalization whose moving statistics can be held still while a pass is recomputed.

Keras' BatchNormalization in training mode normalises by the batch and updates its
moving statistics, m ← momentum·m + (1 − momentum)·batch, as a side effect. Gradient
checkpointing (`gflow.layers.remat`) runs a layer's forward pass a second time in the
backward pass; inside `held_statistics()` this layer still normalises by the batch
(the same output and gradient) but its momentum reads 1, so the update leaves m as it
was (m·1 + batch·0 is m exactly) and each step updates it once. The flag is per
thread: MirroredStrategy traces its replicas in threads that interleave at every
all-reduce, so one replica's recomputation must not hold another's forward update.
"""

import contextlib
import threading

import keras

__all__ = ["BatchNormalization", "held_statistics", "statistics_held"]

_HELD = threading.local()


@contextlib.contextmanager
def held_statistics():
  """Within it (at trace time, on this thread), `BatchNormalization` layers do not move
  their statistics."""
  depth = getattr(_HELD, "depth", 0)
  _HELD.depth = depth + 1
  try:
    yield
  finally:
    _HELD.depth = depth


def statistics_held():
  """True inside `held_statistics()` on this thread."""
  return bool(getattr(_HELD, "depth", 0))


@keras.saving.register_keras_serializable(package="gflow")
class BatchNormalization(keras.layers.BatchNormalization):
  """keras.layers.BatchNormalization (the same variables and math) whose statistics
  `held_statistics()` holds."""

  @property
  def momentum(self):
    return 1.0 if statistics_held() else self._momentum

  @momentum.setter
  def momentum(self, value):
    self._momentum = value
