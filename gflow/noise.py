"""Reproducible stateless noise for any model: augmentation, dequantization, score-model noise."""

import tensorflow as tf

__all__ = ["Noise"]


class Noise:
  """Stateless Gaussian/uniform draws keyed by (seed, stream), sliced from a global batch.

  Every stochastic layer asks for its noise under its own integer `stream`, so
  draws of different layers are independent and a whole likelihood evaluation
  is a deterministic function of `seed`. Under a `tf.distribute` strategy each
  replica passes `offset` (its first row in the global batch) and
  `global_batch`: the noise of the global batch is drawn and this replica's
  rows are kept, so 2 replicas see exactly the noise that 1 replica would see
  at the same global batch. Drawing the global batch costs a little more than
  drawing a slice, but noise is cheap beside the networks that use it.
  """

  def __init__(self, seed, offset=0, global_batch=None):
    self.seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
    if self.seed.shape != (2,):
      raise ValueError(f"Noise needs a stateless seed of shape [2]; got {self.seed.shape}.")
    self.offset = offset
    self.global_batch = global_batch

  @classmethod
  def coerce(cls, seed, default=0):
    """`seed` as a Noise: a Noise, a [2] seed, an int (→ [int, 0]) or None (→ `default`)."""
    if isinstance(seed, Noise):
      return seed
    if seed is None:
      seed = default
    if isinstance(seed, int):
      seed = [seed, 0]
    return cls(seed)

  def fold(self, value):
    """A Noise with an independent seed for sub-draw `value` (same slicing)."""
    return Noise(tf.random.experimental.stateless_fold_in(self.seed, value),
                 self.offset, self.global_batch)

  def _draw(self, fn, shape, stream, dtype):
    shape = list(shape)  # [batch, ...]; the batch may be a scalar tensor
    seed = tf.random.experimental.stateless_fold_in(self.seed, stream)
    if self.global_batch is None:
      return fn(shape, seed=seed, dtype=dtype)
    full = fn([self.global_batch, *shape[1:]], seed=seed, dtype=dtype)
    return full[self.offset:self.offset + shape[0]]

  def normal(self, shape, stream, dtype=tf.float32):
    """Standard normal noise of `shape` ([batch, ...]) for `stream`."""
    return self._draw(tf.random.stateless_normal, shape, stream, dtype)

  def uniform(self, shape, stream, dtype=tf.float32):
    """U[0, 1) noise of `shape` ([batch, ...]) for `stream`."""
    return self._draw(tf.random.stateless_uniform, shape, stream, dtype)
