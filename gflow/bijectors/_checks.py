"""Argument checks shared by gflow bijectors (clear errors at trace time)."""



def channels(bijector, x, expected):
  """Raises ValueError if the static last dimension of `x` is not `expected`."""
  got = x.shape[-1] if x.shape.rank else None
  if expected is not None and got is not None and got != expected:
    raise ValueError(
        f"{bijector.name} expects {expected} channels in the last axis; got "
        f"shape {x.shape}.")


def rank_at_least(bijector, x, ndims):
  if x.shape.rank is not None and x.shape.rank < ndims:
    raise ValueError(
        f"{bijector.name} needs inputs of rank >= {ndims} (an [H, W, C] event "
        f"plus batch dims); got shape {x.shape}.")


def floating(bijector, x):
  if not x.dtype.is_floating:
    raise TypeError(
        f"{bijector.name} expects floating-point inputs; got {x.dtype.name}. "
        "Dequantize integer images first (gflow.data.dequantize).")
