"""Per-flow modulation of a shared coupling network's hidden layers (NanoFlow's embeddings)."""

import keras

__all__ = ["Modulation", "NO_MODULATION"]


class Modulation:
  """What one flow adds to the hidden layers of a network it shares with other flows.

  A network that supports sharing names its modulation points: `bias(j, h)` at
  hidden layer j's pre-activation (h + b_j, b_j a projection of the flow's
  embedding) and `gate(j, h)` where layer j's output joins the network
  (h · g_j, a per-flow per-channel gate that starts at one). `biases` and
  `gates` hold one tensor (or None: unchanged) per point; they broadcast over
  every axis but the channels.
  """

  def __init__(self, biases=None, gates=None):
    self.biases = biases
    self.gates = gates

  def bias(self, j, h):
    b = None if self.biases is None else self.biases[j]
    return h if b is None else h + keras.ops.cast(b, h.dtype)

  def gate(self, j, h):
    g = None if self.gates is None else self.gates[j]
    return h if g is None else h * keras.ops.cast(g, h.dtype)


NO_MODULATION = Modulation()
