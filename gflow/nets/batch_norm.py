"""BatchNormalization with held statistics (for recomputation) and virtual batches.

Keras' BatchNormalization in training mode normalises by the batch and updates its
moving statistics, m ← momentum·m + (1 − momentum)·batch, as a side effect. Gradient
checkpointing (`gflow.layers.remat`) runs a layer's forward pass a second time in the
backward pass; inside `held_statistics()` this layer still normalises by the batch
(the same output and gradient) but its momentum reads 1, so the update leaves m as it
was (m·1 + batch·0 is m exactly) and each step updates it once. The flag is per
thread: MirroredStrategy traces its replicas in threads that interleave at every
all-reduce, so one replica's recomputation must not hold another's forward update.

With `virtual_batch_size` = v ("ghost batch normalisation", Hoffer et al. 2017; tf.keras
2's argument of that name), training normalises each run of v consecutive examples by
its own statistics, and the moving statistics move towards their mean over the runs.
A replica of a `tf.distribute` run whose batch holds whole runs needs nothing from
the others in the forward pass: no all-reduce, so the step can compile with XLA and
share its traces, and any number of replicas computes what one replica does with
the same v. Each replica then moves its own copy of the moving statistics;
`sync_replica_statistics` (the trainer calls it after the forward pass, outside any
compiled function) sets every copy to their mean, which is what one replica would
hold, the update being linear.
"""

import contextlib
import threading

import keras
import tensorflow as tf

__all__ = ["BatchNormalization", "held_statistics", "statistics_held",
           "replica_local_statistics", "sync_replica_statistics"]

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
  `held_statistics()` holds; with `virtual_batch_size` = v, training normalises each run
  of v consecutive examples by its own statistics (not synchronized across replicas;
  each replica moves its own statistics until `sync_replica_statistics`)."""

  def __init__(self, virtual_batch_size=None, **kwargs):
    if virtual_batch_size:
      if int(virtual_batch_size) < 1:
        raise ValueError(f"virtual_batch_size must be a positive number of examples (or "
                         f"None for the whole batch); got {virtual_batch_size}.")
      if kwargs.get("synchronized"):
        raise ValueError("A BatchNormalization with virtual_batch_size normalises each "
                         "virtual batch on its own; it cannot be synchronized across "
                         "replicas as well.")
      if kwargs.get("renorm") or kwargs.get("axis", -1) != -1:
        raise ValueError("virtual_batch_size supports channels-last inputs (axis=-1) "
                         "without renorm.")
    super().__init__(**kwargs)
    self.virtual_batch_size = int(virtual_batch_size) if virtual_batch_size else None

  @property
  def momentum(self):
    return 1.0 if statistics_held() else self._momentum

  @momentum.setter
  def momentum(self, value):
    self._momentum = value

  def call(self, inputs, training=None, mask=None):
    if not (self.virtual_batch_size and training and self.trainable):
      return super().call(inputs, training=training, mask=mask)
    if mask is not None:
      raise ValueError("BatchNormalization with virtual_batch_size takes no mask.")
    v = self.virtual_batch_size
    x = tf.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
    batch, rank = inputs.shape[0], inputs.shape.rank
    if batch is not None and batch % v:
      raise ValueError(f"{self.name}: a batch of {batch} examples does not split into "
                       f"virtual batches of {v} (virtual_batch_size).")
    shape = tf.shape(x)
    if batch is None:
      with tf.control_dependencies([tf.debugging.assert_equal(
          shape[0] % v, 0, message=f"{self.name}: the batch does not split into virtual "
                                   f"batches of {v} (virtual_batch_size)")]):
        shape = tf.identity(shape)
    groups = tf.reshape(x, tf.concat([[shape[0] // v, v], shape[1:]], 0))
    axes = list(range(rank))  # the run index and the positions: all but the channels
    mean, variance = tf.nn.moments(groups, axes[1:], keepdims=True)
    y = tf.nn.batch_normalization(
        groups, mean, variance,
        offset=keras.ops.cast(self.beta, x.dtype) if self.center else None,
        scale=keras.ops.cast(self.gamma, x.dtype) if self.scale else None,
        variance_epsilon=self.epsilon)
    for stat, batch_stat in ((self.moving_mean, mean), (self.moving_variance, variance)):
      over_runs = tf.reshape(tf.reduce_mean(batch_stat, axis=axes), [-1])
      stat.assign(keras.ops.cast(stat, x.dtype) * self.momentum
                  + over_runs * (1.0 - self.momentum))
    return tf.cast(tf.reshape(y, shape), self.compute_dtype)

  def get_config(self):
    return {**super().get_config(), "virtual_batch_size": self.virtual_batch_size}


def replica_local_statistics(layer):
  """The moving statistics under `layer` that each replica moves on its own (those of
  BatchNormalization layers with virtual batches), in a fixed order."""
  out = []
  for sub in layer._flatten_layers():
    if isinstance(sub, BatchNormalization) and sub.virtual_batch_size:
      out += [sub.moving_mean, sub.moving_variance]
    stacked = getattr(sub, "stacked_variable", None)  # a gflow.layers.StackedFlow:
    if stacked is not None:  # its modules' statistics, held stacked
      out += [stacked(v) for v in replica_local_statistics(sub.template)]
  return out


def sync_replica_statistics(variables):
  """In a replica context of several replicas: sets each replica's copy of `variables`
  to the mean over replicas (one all-reduce). Every copy was equal before the step and
  the moving average is linear, so the mean is what one replica would have computed
  over the whole batch's virtual batches. Elsewhere it does nothing."""
  ctx = tf.distribute.get_replica_context()
  if not variables or ctx is None or ctx.num_replicas_in_sync == 1:
    return
  values = []
  for v in variables:
    local = v.value  # this replica's copy
    with tf.device(local.device):  # collectives need the tensors' device
      values.append(tf.identity(local))
  means = ctx.all_reduce("mean", values)
  for v, mean in zip(variables, means):
    v.assign(mean)
