"""One error for a value outside a fixed set of choices, with the near match."""

import difflib

__all__ = ["check_choice"]


def check_choice(value, choices, what):
  """`value` if it is one of `choices`; else ValueError `Unknown <what> 'x'; did you
  mean 'y'? Choose one of …`."""
  choices = tuple(choices)
  if value in choices:
    return value
  near = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
  hint = f" did you mean {near[0]!r}?" if near else ""
  listing = ", ".join(repr(c) for c in choices)
  raise ValueError(f"Unknown {what} {value!r};{hint} choose one of {listing}.")
