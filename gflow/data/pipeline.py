"""Deterministic, resumable `tf.data` input: the stream is a function of (seed, position).

Example k of the training stream (k = step · global_batch + j) is item
perm_e[k mod N] of epoch e = k div N, where perm_e is a stateless shuffle seeded
by (seed, e); any noise it gets (images: U[0, 1) dequantization) is seeded by
(seed, k). So a resumed run continues with exactly the batches and noise the
uninterrupted run would have seen, and the global batch at a step is the same
whatever the number of replicas or workers.
"""

import tensorflow as tf

__all__ = ["train_dataset", "eval_dataset", "distribute", "dequantize", "epoch_stream",
           "shuffled_stream", "example_seed"]

_NOISE_STREAM = 1  # separates the noise seeds from the shuffle seeds


def dequantize(images, seed):
  """uint8 levels → float32 x + u, u ~ U[0, 1) from a stateless `seed` ([2] ints)."""
  images = tf.convert_to_tensor(images)
  return tf.cast(images, tf.float32) + tf.random.stateless_uniform(
      tf.shape(images), seed=seed, dtype=tf.float32)


def example_seed(seed, k):
  """The stateless seed of the noise of training example k."""
  return tf.stack([tf.constant(seed, tf.int64) + _NOISE_STREAM * 1_000_003,
                   tf.cast(k, tf.int64)])


def epoch_stream(n, global_batch, seed, start_step, epoch, example):
  """Endless global batches of `example(k, item)` for stream positions k from
  `start_step · global_batch` on, where the items of epoch e are `epoch(seed, e)` (a
  dataset of n items in an order that is a function of (seed, e) only).

  `example` maps (k, item) to one example (a tensor or a dict of tensors).
  """
  if global_batch > n:
    raise ValueError(f"batch size {global_batch} exceeds the {n} training examples.")
  first = start_step * global_batch
  seed = tf.constant(seed, tf.int64)
  ds = tf.data.Dataset.range(first // n, tf.int64.max).flat_map(
      lambda e: epoch(seed, e)).skip(first % n)
  ds = tf.data.Dataset.zip(tf.data.Dataset.range(first, tf.int64.max), ds)
  ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(global_batch, drop_remainder=True)


def shuffled_stream(n, global_batch, seed, start_step, example):
  """`epoch_stream` over indices 0 … n − 1, epoch e in the order perm_e (a stateless
  shuffle seeded by (seed, e)): `example(k, index)`."""
  def epoch(seed, e):
    perm = tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int64), seed=tf.stack([seed, e]))
    return tf.data.Dataset.from_tensor_slices(perm)
  return epoch_stream(n, global_batch, seed, start_step, epoch, example)


def train_dataset(images, global_batch, seed, start_step=0):
  """Endless batches [global_batch, H, W, C] of dequantized float32 training images."""
  table = tf.constant(images)
  return shuffled_stream(
      int(images.shape[0]), global_batch, seed, start_step,
      lambda k, index: dequantize(tf.gather(table, index), example_seed(seed, k)))


def eval_dataset(images, batch_size, seed=0):
  """The test images in order, dequantized with noise fixed by `seed` (the last batch may be short)."""
  table = tf.constant(images)
  ds = tf.data.Dataset.range(int(images.shape[0]))
  ds = ds.map(lambda k: dequantize(tf.gather(table, k),
                                   tf.stack([tf.constant(seed, tf.int64), k])))
  return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def distribute(strategy, make_global, global_batch):
  """Distributes a dataset of global batches so that, at every step, the replicas
  hold consecutive slices of the same global batch a single replica would see.

  Each worker keeps its contiguous rows of every global batch; its local replicas
  then take consecutive per-replica slices. Auto-sharding is off: the slicing
  is explicit.
  """
  replicas = strategy.num_replicas_in_sync
  if global_batch % replicas:
    raise ValueError(f"global batch {global_batch} is not divisible by the "
                     f"{replicas} replicas.")
  per_replica = global_batch // replicas

  def fn(ctx):
    per_worker = per_replica * (replicas // ctx.num_input_pipelines)
    start = ctx.input_pipeline_id * per_worker
    ds = make_global().map(
        lambda b: tf.nest.map_structure(lambda t: t[start:start + per_worker], b))
    ds = ds.unbatch().batch(per_replica, drop_remainder=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF)
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

  return strategy.distribute_datasets_from_function(fn)
