"""TensorFlow Datasets by name, loaded into memory, with a clear error when offline."""

import socket

import numpy as np

from gflow.data.images import ImageData, check_images

__all__ = ["load_tfds", "DatasetUnavailableError", "SHAPES", "center_crop_resize"]

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


class DatasetUnavailableError(RuntimeError):
  """A dataset that is neither prepared locally nor downloadable here."""


def _online(timeout=3.0):
  try:
    with socket.create_connection(DOWNLOAD_HOST, timeout=timeout):
      return True
  except OSError:
    return False


def center_crop_resize(images, size, batch=4096):
  """uint8 [N, H, W, C] → [N, size, size, C]: central square crop, area-averaged resize
  (CelebA 218x178 → 64x64 as in Glow and DenseFlow)."""
  import tensorflow as tf
  h, w = images.shape[1:3]
  s = min(h, w)
  top, left = (h - s) // 2, (w - s) // 2
  out = []
  for i in range(0, len(images), batch):
    crop = tf.constant(images[i:i + batch, top:top + s, left:left + s])
    small = tf.image.resize(tf.cast(crop, tf.float32), [size, size], method="area")
    out.append(np.asarray(tf.cast(tf.clip_by_value(tf.round(small), 0, 255), tf.uint8)))
  return np.concatenate(out) if out else images


def load_tfds(name, data_dir="", image_key="image", online=None, image_size=0):
  """Loads a prepared tfds dataset; downloads it only when this machine is online.

  Offline and unprepared, raises at once (tfds would otherwise retry for minutes)
  with the way to prepare it elsewhere and point `--config.data.data_dir` at it.
  With `image_size`, images are centre-cropped to a square and resized to it.
  """
  import tensorflow_datasets as tfds
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
  except Exception as e:  # unknown name: tfds lists near matches itself
    raise ValueError(f"tfds has no dataset {name!r}: {e}") from None
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
  arrays = tfds.as_numpy(builder.as_dataset(split=[train_split, test_split], batch_size=-1))
  train, test = (np.asarray(a[image_key]) for a in arrays)
  if image_size:
    train, test = (center_crop_resize(a, image_size) for a in (train, test))
  return ImageData(name, check_images(train, f"{name}:{train_split}"),
                   check_images(test, f"{name}:{test_split}"))
