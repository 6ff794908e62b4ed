"""TensorFlow Datasets by name, streamed from their files, with a clear error when offline.

Nothing is loaded into memory: a 64x64 ImageNet train split is 12 GB as uint8.
The training stream keeps what makes resume exact (`gflow.data.pipeline`):
epoch e reads the split's shard files in an order shuffled statelessly by
(seed, e), interleaved deterministically, then permuted in blocks of
`data.shuffle_buffer` records, each by a stateless seed from (seed, e, block);
example k of the stream is dequantized with noise seeded by
(seed, k). So batch k is a function of (seed, k): a resumed run skips to its
position (reading, not training on, the examples before it in that epoch) and
sees what the uninterrupted run saw. The shuffle within an epoch is local (shard
order, interleaving and blocks), as with any file-streamed dataset.
"""

import socket

import tensorflow as tf

from gflow.data.pipeline import dequantize, example_seed
from gflow.data.source import DataSource

__all__ = ["load_tfds", "DatasetUnavailableError", "SHAPES", "TfdsImages", "crop_and_resize"]

# tfds name -> (H, W, C) as stored (before any `image_size` resizing)
SHAPES = {
    "cifar10": (32, 32, 3),
    "downsampled_imagenet/32x32": (32, 32, 3),
    "downsampled_imagenet/64x64": (64, 64, 3),
    "celeb_a": (218, 178, 3),
    "mnist": (28, 28, 1),
}
# tfds name -> (train split, test split)
SPLITS = {
    "cifar10": ("train", "test"),
    "downsampled_imagenet/32x32": ("train", "validation"),
    "downsampled_imagenet/64x64": ("train", "validation"),
    "celeb_a": ("train", "test"),
    "mnist": ("train", "test"),
}
DOWNLOAD_HOST = ("storage.googleapis.com", 443)


class UnknownTfdsDataset(ValueError):
  """A name tfds does not know."""


class DatasetUnavailableError(RuntimeError):
  """A dataset that is neither prepared locally nor downloadable here."""


def _online(timeout=3.0):
  try:
    with socket.create_connection(DOWNLOAD_HOST, timeout=timeout):
      return True
  except OSError:
    return False


def crop_and_resize(image, size):
  """uint8 [H, W, C] → [size, size, C]: central square crop, area-averaged resize
  (CelebA 218x178 → 64x64 as in Glow and DenseFlow), rounded back to levels."""
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  s = tf.minimum(h, w)
  crop = image[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
  small = tf.image.resize(tf.cast(crop, tf.float32)[None], [size, size], method="area")[0]
  return tf.cast(tf.clip_by_value(tf.round(small), 0, 255), tf.uint8)


class TfdsImages(DataSource):
  """A prepared tfds image dataset, streamed from its TFRecord shards (see the module
  docstring). Batches {"x": float32 images in level units, dequantized}."""

  def __init__(self, name, builder, image_key="image", image_size=0, shuffle_buffer=10_000):
    self.name = name
    self._builder = builder
    self._image_key = image_key
    self._image_size = image_size
    self._shuffle_buffer = shuffle_buffer
    self.train_split, self.test_split = SPLITS.get(name, ("train", "test"))
    splits = builder.info.splits
    for split in (self.train_split, self.test_split):
      if split not in splits:
        raise ValueError(f"tfds dataset {name!r} has no split {split!r}; it has "
                         f"{sorted(splits)}.")
    if str(getattr(builder.info, "file_format", "tfrecord")).lower().find("tfrecord") < 0:
      raise ValueError(f"tfds dataset {name!r} is stored as {builder.info.file_format}; "
                       "gflow streams TFRecord shards (prepare it with the default format).")
    shape = tuple(builder.info.features[image_key].shape)
    if image_size:
      shape = (image_size, image_size, shape[-1])
    if None in shape:
      raise ValueError(f"tfds dataset {name!r} has images of varying size {shape}; set "
                       "--config.data.image_size to crop and resize them.")
    self._shape = shape

  @property
  def element_spec(self):
    return {"x": tf.TensorSpec(self._shape, tf.float32)}

  @property
  def num_train(self):
    return int(self._builder.info.splits[self.train_split].num_examples)

  @property
  def num_test(self):
    return int(self._builder.info.splits[self.test_split].num_examples)

  def _files(self, split):
    return tf.constant([str(p) for p in self._builder.info.splits[split].filepaths])

  def _image(self, serialized):
    image = self._builder.info.features.deserialize_example(serialized)[self._image_key]
    if self._image_size:
      image = crop_and_resize(image, self._image_size)
    return tf.ensure_shape(image, self._shape)

  def _epoch(self, seed, e):
    """The training split in epoch e's order (a function of (seed, e))."""
    files = self._files(self.train_split)
    epoch_seed = tf.stack([seed, e])
    order = tf.random.experimental.stateless_shuffle(files, seed=epoch_seed)
    ds = tf.data.Dataset.from_tensor_slices(order).interleave(
        tf.data.TFRecordDataset, cycle_length=4, block_length=16, deterministic=True)
    # Blocks of `shuffle_buffer` records, each permuted by a stateless seed (tf.data's
    # own shuffle buffer takes only Python seeds, not (seed, e) tensors).
    return ds.batch(self._shuffle_buffer).enumerate().map(
        lambda w, block: tf.random.experimental.stateless_shuffle(
            block, seed=tf.random.experimental.stateless_fold_in(epoch_seed, w)),
        deterministic=True).unbatch()

  def train_dataset(self, global_batch, seed, start_step=0):
    n = self.num_train
    if global_batch > n:
      raise ValueError(f"batch size {global_batch} exceeds the {n} training examples.")
    first = start_step * global_batch
    seed = tf.constant(seed, tf.int64)
    ds = tf.data.Dataset.range(first // n, tf.int64.max).flat_map(
        lambda e: self._epoch(seed, e)).skip(first % n)
    ds = tf.data.Dataset.zip(tf.data.Dataset.range(first, tf.int64.max), ds)
    ds = ds.map(lambda k, record: {"x": dequantize(self._image(record), example_seed(seed, k))},
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(global_batch, drop_remainder=True)

  def eval_dataset(self, batch_size, seed, limit=0):
    ds = tf.data.TFRecordDataset(self._files(self.test_split))  # in order
    if limit:
      ds = ds.take(limit)
    seed = tf.constant(seed, tf.int64)
    ds = ds.enumerate().map(
        lambda k, record: {"x": dequantize(self._image(record), tf.stack([seed, k]))},
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_tfds(name, data_dir="", image_key="image", online=None, image_size=0,
              shuffle_buffer=10_000):
  """A prepared tfds dataset as a streaming `TfdsImages`; downloads and prepares it only
  when this machine is online.

  Offline and unprepared, raises at once (tfds would otherwise retry for minutes)
  with the way to prepare it elsewhere and point `--config.data.data_dir` at it.
  With `image_size`, images are centre-cropped to a square and resized to it.
  """
  import tensorflow_datasets as tfds
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
  except Exception as e:  # unknown name: tfds lists near matches itself
    raise UnknownTfdsDataset(f"tfds has no dataset {name!r}: {e}") from None
  if not builder.is_prepared():
    online = _online() if online is None else online
    if not online:
      where = data_dir or builder.data_dir
      raise DatasetUnavailableError(
          f"Dataset {name!r} is not prepared under {where!r} and this machine cannot "
          f"download it (offline). On a machine with internet run `tfds build {name} "
          f"--data_dir=DIR` (or tfds.load({name!r}, data_dir=DIR)), copy DIR here and "
          f"pass --config.data.data_dir=DIR.")
    builder.download_and_prepare()
  return TfdsImages(name, builder, image_key=image_key, image_size=image_size,
                    shuffle_buffer=shuffle_buffer)
