"""In-memory arrays of any shape as a data source: {"x": …, "conditioning": …}."""

import numpy as np
import tensorflow as tf

from gflow.data.pipeline import shuffled_stream
from gflow.data.source import DataSource

__all__ = ["ArraySource"]


def _check(arrays, what):
  if "x" not in arrays:
    raise ValueError(f"{what}: needs an array 'x'; got {sorted(arrays)}.")
  n = len(arrays["x"])
  out = {}
  for key, value in arrays.items():
    value = np.asarray(value)
    if len(value) != n:
      raise ValueError(f"{what}: '{key}' has {len(value)} rows but 'x' has {n}.")
    if value.dtype.kind == "f":
      bad = ~np.isfinite(value)
      if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{what}: '{key}' has {int(bad.sum())} non-finite values (NaN/Inf), "
                         f"the first in row {row}. Clean or drop those rows.")
      value = value.astype(np.float32)
    out[key] = value
  if n == 0:
    raise ValueError(f"{what}: no examples.")
  return out


class ArraySource(DataSource):
  """Continuous examples held in memory: `train` and `test` are dicts of arrays with
  one row per example (`"x"`, and optionally `"conditioning"`), floats as float32.

  Batches are rows as they are (no noise), shuffled statelessly per epoch.
  """

  def __init__(self, name, train, test):
    self.name = name
    self.train = _check(train, f"{name}:train")
    self.test = _check(test, f"{name}:test")
    if self.train.keys() != self.test.keys():
      raise ValueError(f"{name}: train has {sorted(self.train)} but test has "
                       f"{sorted(self.test)}.")
    for key in self.train:
      if self.train[key].shape[1:] != self.test[key].shape[1:]:
        raise ValueError(f"{name}: '{key}' is {self.train[key].shape[1:]} per example in "
                         f"train but {self.test[key].shape[1:]} in test.")

  @property
  def element_spec(self):
    return {k: tf.TensorSpec(v.shape[1:], tf.as_dtype(v.dtype)) for k, v in self.train.items()}

  @property
  def num_train(self):
    return len(self.train["x"])

  @property
  def num_test(self):
    return len(self.test["x"])

  def train_dataset(self, global_batch, seed, start_step=0):
    tables = {k: tf.constant(v) for k, v in self.train.items()}
    return shuffled_stream(self.num_train, global_batch, seed, start_step,
                           lambda k, i: {key: tf.gather(t, i) for key, t in tables.items()})

  def eval_dataset(self, batch_size, seed, limit=0):
    rows = {k: (v[:limit] if limit else v) for k, v in self.test.items()}
    return tf.data.Dataset.from_tensor_slices(rows).batch(batch_size)
