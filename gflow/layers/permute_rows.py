"""A fixed row permutation as a flow layer (no variables)."""

import numpy as np

from gflow.bijectors.permute_rows import PermuteRows
from gflow.layers.base import FlowLayer

__all__ = ["PermuteRowsLayer"]


class PermuteRowsLayer(FlowLayer):
  """y[..., i, :, :] = x[..., permutation[i], :, :] (WaveFlow's reversals between flows)."""

  def __init__(self, permutation, **kwargs):
    super().__init__(**kwargs)
    self.permutation = np.asarray(permutation, np.int64)

  def build(self, input_shape):
    if input_shape[-3] is not None and input_shape[-3] != len(self.permutation):
      raise ValueError(f"PermuteRowsLayer permutes {len(self.permutation)} rows; got input "
                       f"{input_shape}.")

  def bijector(self, conditioning=None):
    return PermuteRows(self.permutation, name=self.name)

  def get_config(self):
    return {**super().get_config(), "permutation": self.permutation.tolist()}
