"""Exponential moving average of weights, checkpointed with the run."""

import contextlib

import tensorflow as tf

__all__ = ["EMA"]


class EMA(tf.Module):
  """Shadow copies s ← d·s + (1 − d)·v of `variables`.

  Create it inside `strategy.scope()`; `update()` may run in replica context
  (all replicas hold the same values, so the first replica's write is kept).
  `swapped()` puts the averages into the model for evaluation or sampling and
  restores the training weights afterwards.
  """

  def __init__(self, variables, decay):
    super().__init__(name="ema")
    if not 0.0 < decay < 1.0:
      raise ValueError(f"EMA decay must be in (0, 1); got {decay}.")
    self.decay = decay
    self._model_vars = list(variables)
    self.shadows = [
        tf.Variable(tf.convert_to_tensor(v), trainable=False,
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                    name=f"ema_{i}")
        for i, v in enumerate(self._model_vars)]

  def update(self):
    for s, v in zip(self.shadows, self._model_vars):
      s.assign(self.decay * s + (1.0 - self.decay) * tf.convert_to_tensor(v))

  def copy_to_model(self):
    for s, v in zip(self.shadows, self._model_vars):
      v.assign(s)

  @contextlib.contextmanager
  def swapped(self):
    backup = [tf.identity(tf.convert_to_tensor(v)) for v in self._model_vars]
    self.copy_to_model()
    try:
      yield
    finally:
      for b, v in zip(backup, self._model_vars):
        v.assign(b)
