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

import numpy as np
import tensorflow as tf

from gflow.data.audio import AudioExamples
from gflow.data.pipeline import dequantize, epoch_stream, example_seed
from gflow.data.source import DataSource

__all__ = ["load_tfds", "DatasetUnavailableError", "AUDIO_DATASETS", "SHAPES", "TfdsAudio", "TfdsImages",
           "TfdsStream", "crop_and_resize"]

# tfds name -> (H, W, C) as stored (before any `image_size` resizing)
SHAPES = {
    "cifar10": (32, 32, 3),
    "downsampled_imagenet/32x32": (32, 32, 3),
    "downsampled_imagenet/64x64": (64, 64, 3),
    "celeb_a": (218, 178, 3),
    "mnist": (28, 28, 1),
}
# tfds speech datasets (their examples are segments of `data.segment_length` samples)
AUDIO_DATASETS = ("ljspeech",)
# tfds name -> (train split, test split)
SPLITS = {
    "cifar10": ("train", "test"),
    "downsampled_imagenet/32x32": ("train", "validation"),
    "downsampled_imagenet/64x64": ("train", "validation"),
    "celeb_a": ("train", "test"),
    "mnist": ("train", "test"),
    "ljspeech": ("train[:95%]", "train[95%:]"),  # one split in tfds: a fixed 5 % held out
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


class TfdsStream(DataSource):
  """Base of the tfds sources: a split's records streamed from its TFRecord shards
  (read through the split's file instructions, so sliced splits such as
  "train[95%:]" work too). Subclasses turn a decoded record into an example."""

  def __init__(self, name, builder, train_split, test_split, shuffle_buffer=10_000):
    self.name = name
    self._builder = builder
    self._shuffle_buffer = shuffle_buffer
    self.train_split, self.test_split = train_split, test_split
    for split in (train_split, test_split):
      try:
        builder.info.splits[split]
      except (KeyError, ValueError):
        raise ValueError(f"tfds dataset {name!r} has no split {split!r}; it has "
                         f"{sorted(builder.info.splits)}.") from None
    if "tfrecord" not in str(getattr(builder.info, "file_format", "tfrecord")).lower():
      raise ValueError(f"tfds dataset {name!r} is stored as {builder.info.file_format}; "
                       "gflow streams TFRecord shards (prepare it with the default format).")

  @property
  def num_train(self):
    return int(self._builder.info.splits[self.train_split].num_examples)

  @property
  def num_test(self):
    return int(self._builder.info.splits[self.test_split].num_examples)

  def _instructions(self, split):
    """(files, skips, takes): the records of `split`, shard by shard."""
    rows = self._builder.info.splits[split].file_instructions
    return (tf.constant([str(r.filename) for r in rows]),
            tf.constant([r.skip for r in rows], tf.int64),
            tf.constant([r.take for r in rows], tf.int64))

  @staticmethod
  def _read(files, skips, takes, interleave=False):
    ds = tf.data.Dataset.from_tensor_slices((files, skips, takes))
    shard = lambda f, skip, take: tf.data.TFRecordDataset(f).skip(skip).take(take)  # noqa: E731
    if interleave:
      return ds.interleave(shard, cycle_length=4, block_length=16,
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.flat_map(shard)

  def _decode(self, record):
    return self._builder.info.features.deserialize_example(record)

  def _epoch(self, seed, e):
    """The training split in epoch e's order (a function of (seed, e))."""
    files, skips, takes = self._instructions(self.train_split)
    epoch_seed = tf.stack([seed, e])
    order = tf.random.experimental.stateless_shuffle(tf.range(tf.size(files)), seed=epoch_seed)
    ds = self._read(tf.gather(files, order), tf.gather(skips, order), tf.gather(takes, order),
                    interleave=True)
    # Blocks of `shuffle_buffer` records, each permuted by a stateless seed (tf.data's
    # own shuffle buffer takes only Python seeds, not (seed, e) tensors).
    return ds.batch(self._shuffle_buffer).enumerate().map(
        lambda w, block: tf.random.experimental.stateless_shuffle(
            block, seed=tf.random.experimental.stateless_fold_in(epoch_seed, w)),
        deterministic=True).unbatch()

  def train_dataset(self, global_batch, seed, start_step=0):
    return epoch_stream(
        self.num_train, global_batch, seed, start_step, self._epoch,
        lambda k, record: self._train_example(self._decode(record), example_seed(seed, k)))

  def eval_dataset(self, batch_size, seed, limit=0):
    ds = self._read(*self._instructions(self.test_split))  # in order
    if limit:
      ds = ds.take(limit)
    seed = tf.constant(seed, tf.int64)
    ds = ds.enumerate().map(
        lambda k, record: self._eval_example(self._decode(record), tf.stack([seed, k])),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return self._batch_eval(ds, batch_size).prefetch(tf.data.AUTOTUNE)

  def _train_example(self, features, noise_seed):
    raise NotImplementedError

  def _eval_example(self, features, noise_seed):
    raise NotImplementedError

  def _batch_eval(self, ds, batch_size):
    return ds.batch(batch_size)


class TfdsImages(TfdsStream):
  """A prepared tfds image dataset, streamed (see the module docstring). Batches
  {"x": float32 images in level units, dequantized with U[0, 1) noise}."""

  def __init__(self, name, builder, train_split="train", test_split="test", image_key="image",
               image_size=0, shuffle_buffer=10_000):
    super().__init__(name, builder, train_split, test_split, shuffle_buffer)
    self._image_key = image_key
    self._image_size = image_size
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

  def _image(self, features):
    image = features[self._image_key]
    if self._image_size:
      image = crop_and_resize(image, self._image_size)
    return tf.ensure_shape(image, self._shape)

  def _train_example(self, features, noise_seed):
    return {"x": dequantize(self._image(features), noise_seed)}

  def _eval_example(self, features, noise_seed):
    return {"x": dequantize(self._image(features), noise_seed)}


class TfdsAudio(AudioExamples, TfdsStream):
  """A prepared tfds speech dataset (e.g. `ljspeech`), streamed: training batches
  {"x": [segment_length]} of random segments (seeded by (seed, k)), evaluation
  {"x": whole clips zero-padded per batch, "length"}, floats in [-1, 1]; with a mel
  config, log-mel "conditioning" too (see `gflow.data.audio`)."""

  def __init__(self, name, builder, train_split, test_split, audio_key, segment_length,
               shuffle_buffer=10_000, mel=None):
    TfdsStream.__init__(self, name, builder, train_split, test_split, shuffle_buffer)
    feature = builder.info.features[audio_key]
    self._audio_key = audio_key
    dtype = tf.as_dtype(feature.dtype)
    self._scale = float(np.iinfo(dtype.as_numpy_dtype).max + 1) if dtype.is_integer else 1.0
    self._setup_audio(int(feature.sample_rate), segment_length, mel)

  def _wave(self, features):
    wave = tf.cast(features[self._audio_key], tf.float32) / self._scale
    return wave if wave.shape.rank == 1 else tf.reduce_mean(wave, axis=-1)

  def _train_example(self, features, noise_seed):
    return self._segment_example(self._wave(features), noise_seed)

  def _eval_example(self, features, noise_seed):
    return self._clip_example(self._wave(features))

  def _batch_eval(self, ds, batch_size):
    return self._batch_clips(ds, batch_size)


AUDIO_KEYS = ("speech", "audio")


def load_tfds(name, data_dir="", image_key="image", online=None, image_size=0,
              shuffle_buffer=10_000, segment_length=0, mel=None):
  """A prepared tfds dataset as a streaming `TfdsImages` (or `TfdsAudio` for speech:
  a `speech` or `audio` feature); downloads and prepares it only when this
  machine is online.

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
  train_split, test_split = SPLITS.get(name, ("train", "test"))
  features = builder.info.features
  audio = [k for k in AUDIO_KEYS if k in features]
  if image_key not in features and audio:
    return TfdsAudio(name, builder, train_split, test_split, audio[0], segment_length,
                     shuffle_buffer=shuffle_buffer, mel=mel)
  if image_key not in features:
    raise ValueError(f"tfds dataset {name!r} has neither images ({image_key!r}) nor audio "
                     f"({', '.join(AUDIO_KEYS)}); its features are {sorted(features)}.")
  return TfdsImages(name, builder, train_split, test_split, image_key=image_key,
                    image_size=image_size, shuffle_buffer=shuffle_buffer)
