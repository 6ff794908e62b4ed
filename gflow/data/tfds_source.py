"""TensorFlow Datasets by name, loaded into memory, with a clear error when offline."""

import socket

import numpy as np

from gflow.data.images import ImageData, check_images

__all__ = ["load_tfds", "DatasetUnavailableError"]

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


def load_tfds(name, data_dir="", image_key="image", online=None):
  """Loads a prepared tfds dataset; downloads it only when this machine is online.

  Offline and unprepared, raises at once (tfds would otherwise retry for minutes)
  with the way to prepare it elsewhere and point `--config.data.data_dir` at it.
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
  return ImageData(name, check_images(train, f"{name}:{train_split}"),
                   check_images(test, f"{name}:{test_split}"))
