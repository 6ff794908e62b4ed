"""In-memory image data: the train/test arrays every source produces, checked."""

import dataclasses

import numpy as np
import tensorflow as tf

from gflow.data.pipeline import eval_dataset, train_dataset
from gflow.data.source import DataSource

__all__ = ["ImageData", "check_images", "split_fixed", "all_images"]


@dataclasses.dataclass(frozen=True)
class ImageData(DataSource):
  """uint8 images [N, H, W, C] in levels 0 … num_levels − 1, with a fixed test split,
  held in memory; batches {"x": float32 images dequantized with U[0, 1) noise}."""
  name: str
  train: np.ndarray
  test: np.ndarray
  num_levels: int = 256

  @property
  def element_spec(self):
    return {"x": tf.TensorSpec(self.train.shape[1:], tf.float32)}

  @property
  def num_train(self):
    return len(self.train)

  @property
  def num_test(self):
    return len(self.test)

  def train_dataset(self, global_batch, seed, start_step=0):
    return train_dataset(self.train, global_batch, seed, start_step).map(lambda x: {"x": x})

  def eval_dataset(self, batch_size, seed, limit=0):
    test = self.test[:limit] if limit else self.test
    return eval_dataset(test, batch_size, seed).map(lambda x: {"x": x})


def check_images(array, what, num_levels=256):
  """Returns `array` as uint8 [N, H, W, C]; ValueError on NaN/Inf, range or shape."""
  array = np.asarray(array)
  if array.ndim == 3:
    array = array[..., None]
  if array.ndim != 4 or array.shape[0] == 0:
    raise ValueError(f"{what}: expected images [N, H, W, C] (or [N, H, W]) with N > 0; "
                     f"got shape {array.shape}.")
  if array.dtype.kind == "f":
    bad = ~np.isfinite(array)
    if bad.any():
      first = [int(i) for i in np.argwhere(bad)[0]]
      raise ValueError(f"{what}: {int(bad.sum())} non-finite values (NaN/Inf), the first "
                       f"in image {first[0]} at {tuple(first[1:])}. Clean or drop those "
                       "images before training.")
  elif array.dtype.kind not in "ui":
    raise ValueError(f"{what}: expected integer levels or floats; got dtype {array.dtype}.")
  if array.min() < 0 or array.max() > num_levels - 1:
    raise ValueError(f"{what}: values must be levels in [0, {num_levels - 1}]; got "
                     f"[{array.min()}, {array.max()}].")
  if array.dtype.kind == "f" and not np.all(array == np.round(array)):
    raise ValueError(f"{what}: float images must hold whole levels (0 … {num_levels - 1}); "
                     "dequantization adds the noise.")
  return array.astype(np.uint8 if num_levels <= 256 else np.int32)


def split_fixed(images, test_fraction, seed=0):
  """A fixed train/test split: a seeded permutation, the first part held out."""
  order = np.random.RandomState(seed).permutation(len(images))
  n_test = max(1, int(round(test_fraction * len(images))))
  return images[order[n_test:]], images[order[:n_test]]


def all_images(source, split="train", limit=0):
  """Every image of a source's split as uint8 levels [N, H, W, C]: an in-memory source's
  array, or (streams) the first epoch of its training stream / its test set in order,
  with the dequantization noise floored away. `limit` > 0 keeps the first `limit`."""
  array = getattr(source, split, None)
  if isinstance(array, np.ndarray):
    return array[:limit] if limit else array
  total = source.num_train if split == "train" else source.num_test
  total = min(total, limit) if limit else total
  stream = (source.train_dataset(1000, seed=0) if split == "train"
            else source.eval_dataset(1000, seed=0))
  out, left = [], total
  for batch in stream:
    x = np.floor(np.asarray(batch["x"]))[:left]
    out.append(x.astype(np.uint8))
    left -= len(x)
    if left <= 0:
      break
  return np.concatenate(out)[:total]
