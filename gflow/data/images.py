"""In-memory image data: the train/test arrays every source produces, checked."""

import dataclasses

import numpy as np

__all__ = ["ImageData", "check_images", "split_fixed"]


@dataclasses.dataclass(frozen=True)
class ImageData:
  """uint8 images [N, H, W, C] in levels 0 … num_levels − 1, with a fixed test split."""
  name: str
  train: np.ndarray
  test: np.ndarray
  num_levels: int = 256

  @property
  def event_shape(self):
    return tuple(self.train.shape[1:])


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
