"""Learning-rate schedule: linear warm-up, then exponential decay."""

import keras
import tensorflow as tf

__all__ = ["WarmupExponentialDecay"]


@keras.saving.register_keras_serializable(package="gflow")
class WarmupExponentialDecay(keras.optimizers.schedules.LearningRateSchedule):
  """lr(t) = base · min(1, (t+1)/warmup) · rate^(max(0, t − warmup) / decay_steps).

  The decay starts when the warm-up ends (it is not overridden by it). With
  `staircase` the exponent is floored: the rate is applied once every
  `decay_steps` (once per epoch when that is the epoch length, as DenseFlow's
  per-epoch decay).
  """

  def __init__(self, base, warmup_steps=0, decay_rate=1.0, decay_steps=1, staircase=False):
    if base <= 0 or warmup_steps < 0 or decay_rate <= 0 or decay_steps <= 0:
      raise ValueError(f"Bad schedule: base={base}, warmup_steps={warmup_steps}, "
                       f"decay_rate={decay_rate}, decay_steps={decay_steps}.")
    self.base, self.warmup_steps = base, warmup_steps
    self.decay_rate, self.decay_steps = decay_rate, decay_steps
    self.staircase = staircase

  def __call__(self, step):
    t = tf.cast(step, tf.float32)
    warm = tf.minimum(1.0, (t + 1.0) / max(self.warmup_steps, 1))
    exponent = tf.maximum(t - self.warmup_steps, 0.0) / self.decay_steps
    if self.staircase:
      exponent = tf.floor(exponent)
    decay = tf.pow(float(self.decay_rate), exponent)
    return self.base * warm * decay

  def get_config(self):
    return dict(base=self.base, warmup_steps=self.warmup_steps,
                decay_rate=self.decay_rate, decay_steps=self.decay_steps,
                staircase=self.staircase)
