"""Exponential moving average of weights, checkpointed with the run."""

import contextlib

import tensorflow as tf

from gflow.flows.parts import on_device

__all__ = ["EMA"]


class _Untracked:
  """A list that `tf.Module` neither tracks for checkpoints nor lists in `.variables`."""

  def __init__(self, items):
    self.items = items


class EMA(tf.Module):
  """Shadow copies s ← d_t·s + (1 − d_t)·v of `variables`.

  d_t = min(decay, (1 + t) / (10 + t)) at update t (as tf.train's
  ExponentialMovingAverage with num_updates): early averages forget the
  initial weights quickly instead of carrying them for ~1/(1 − decay) steps.

  Create it inside `strategy.scope()`; `update()` may run in replica context
  (all replicas hold the same values, so the first replica's write is kept).
  `swapped()` puts the averages into the model for evaluation or sampling and
  restores the training weights afterwards.
  """

  def __init__(self, variables, decay, colocate=False):
    """`variables`: {key: variable} (shadows are checkpointed under the same keys);
    `colocate` places each shadow on its variable's device (a flow trained in parts
    on several devices)."""
    super().__init__(name="ema")
    if not 0.0 < decay < 1.0:
      raise ValueError(f"EMA decay must be in (0, 1); got {decay}.")
    if not isinstance(variables, dict):
      raise TypeError("EMA takes {key: variable} (gflow.train.checkpoint.model_variables), "
                      f"so its shadows are keyed like the model's; got {type(variables).__name__}.")
    self.decay = decay
    keys = sorted(variables)
    # The model's variables are the model's to checkpoint: held untracked, or the
    # checkpoint would save each again under a positional key (`ema/_model_vars/<i>`).
    self._targets = _Untracked([variables[k] for k in keys])
    self.shadows = {}
    for i, k in enumerate(keys):
      device = getattr(getattr(variables[k], "value", variables[k]), "device", "")
      with on_device(device if colocate else None):
        self.shadows[k] = tf.Variable(
            tf.convert_to_tensor(variables[k]), trainable=False,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA, name=f"ema_{i}")
    self._shadow_list = [self.shadows[k] for k in keys]
    self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="ema_updates",
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  def update(self, gate=None):
    """One averaging step; where the scalar bool `gate` is false, none (the shadows and
    the update count stay bit for bit: decay 1 keeps s = 1·s + 0·v)."""
    step = 1 if gate is None else tf.cast(gate, tf.int64)
    t = tf.cast(self.updates.assign_add(step), tf.float32)
    decay = tf.minimum(self.decay, (1.0 + t) / (10.0 + t))
    if gate is not None:
      decay = tf.where(gate, decay, 1.0)
    for s, v in zip(self._shadow_list, self._targets.items):
      s.assign(decay * s + (1.0 - decay) * tf.convert_to_tensor(v))

  def copy_to_model(self):
    for s, v in zip(self._shadow_list, self._targets.items):
      v.assign(s)

  @contextlib.contextmanager
  def swapped(self):
    backup = [tf.identity(tf.convert_to_tensor(v)) for v in self._targets.items]
    self.copy_to_model()
    try:
      yield
    finally:
      for b, v in zip(backup, self._targets.items):
        v.assign(b)
