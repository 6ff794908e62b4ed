"""The embedded default: scikit-learn's 8x8 handwritten digits (ships with the package)."""

import numpy as np

from gflow.data.images import ImageData, check_images, split_fixed

__all__ = ["load_digits", "digit_labels"]

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def load_digits(num_levels=256):
  """1,797 digits as [N, 8, 8, 1] uint8, scaled from 17 levels (0–16) to `num_levels`.

  The test split (20 %, a permutation seeded with 0) is fixed.
  """
  from sklearn.datasets import load_digits as sk_load
  raw = sk_load().images  # float64 in 0 … 16
  images = np.round(raw * (num_levels - 1) / 16.0)[..., None]
  images = check_images(images, "digits", num_levels)
  train, test = split_fixed(images, TEST_FRACTION, SPLIT_SEED)
  return ImageData("digits", train, test, num_levels)


def digit_labels():
  """(train labels, test labels) of `load_digits`' fixed split: the class 0–9 of each
  image, in the same order (for a feature network trained on the digits themselves)."""
  from sklearn.datasets import load_digits as sk_load
  labels = sk_load().target.astype(np.int32)
  train, test = split_fixed(labels, TEST_FRACTION, SPLIT_SEED)
  return train, test
