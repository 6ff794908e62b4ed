"""Conditioning inputs of coupling networks: checked, then concatenated to the features."""

import keras

__all__ = ["concat_conditioning"]


def concat_conditioning(layer, x, conditioning, size):
  """[x, conditioning] on the last axis when `size` > 0, else x; a clear error when a
  conditioning input is missing, unexpected, or of the wrong width."""
  if size == 0:
    if conditioning is not None:
      raise ValueError(f"{layer.name} takes no conditioning input (built with size 0); "
                       f"got one of shape {conditioning.shape}.")
    return x
  if conditioning is None:
    raise ValueError(f"{layer.name} was built for a conditioning input of {size} features; "
                     "none was given.")
  if conditioning.shape[-1] is not None and conditioning.shape[-1] != size:
    raise ValueError(f"{layer.name} expects {size} conditioning features on the last axis; "
                     f"got shape {conditioning.shape}.")
  return keras.ops.concatenate([x, keras.ops.cast(conditioning, x.dtype)], axis=-1)
