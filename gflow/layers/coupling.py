"""Keras owner of a coupling network, building affine or additive coupling bijectors."""

import functools

from gflow.bijectors.coupling import AdditiveCoupling, AffineCoupling, log_scale_fn
from gflow.layers.base import FlowLayer

__all__ = ["CouplingLayer"]

KINDS = ("affine", "additive")


class CouplingLayer(FlowLayer):
  """Coupling over the channel split x = [x₁ (⌈C/2⌉), x₂ (⌊C/2⌋)].

  `network_fn(out_channels)` returns the Keras coupling network (e.g.
  `functools.partial(gflow.nets.GlowCNN, width=512)`); it is created in `build`
  once C is known, with 2·⌊C/2⌋ outputs for `kind="affine"` and ⌊C/2⌋ for
  `kind="additive"`, and this layer owns it.
  """

  def __init__(self, network_fn, kind="affine", scale_fn="sigmoid", event_ndims=3,
               **kwargs):
    super().__init__(**kwargs)
    if kind not in KINDS:
      raise ValueError(f"Unknown coupling kind {kind!r}; choose one of {KINDS}.")
    log_scale_fn(scale_fn)  # fail now on a bad name
    self.network_fn = network_fn
    self.kind = kind
    self.scale_fn = scale_fn
    self.event_ndims = event_ndims

  def build(self, input_shape):
    c = input_shape[-1]
    if c is None or c < 2:
      raise ValueError(f"A coupling needs at least 2 known channels; got {input_shape}.")
    c2 = c // 2
    self.network = self.network_fn(2 * c2 if self.kind == "affine" else c2)
    self.network.build(tuple(input_shape[:-1]) + (c - c2,))

  def bijector(self, training=False):
    network = functools.partial(self.network, training=True) if training else self.network
    if self.kind == "affine":
      return AffineCoupling(network, scale_fn=self.scale_fn,
                            event_ndims=self.event_ndims, name=self.name)
    return AdditiveCoupling(network, event_ndims=self.event_ndims, name=self.name)

  def forward_and_log_det(self, x, event_ndims, training=False):
    return self.bijector(training=training).forward_and_log_det(x, event_ndims)
