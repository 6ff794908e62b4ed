"""Keras owner of a coupling network, building affine or additive coupling bijectors."""

import functools

import keras

from gflow.bijectors.coupling import AdditiveCoupling, AffineCoupling, log_scale_fn
from gflow.choices import check_choice
from gflow.layers.base import FlowLayer

__all__ = ["CouplingLayer"]

KINDS = ("affine", "additive")


class CouplingLayer(FlowLayer):
  """Coupling over the channel split x = [x₁ (⌈C/2⌉), x₂ (⌊C/2⌋)].

  The coupling network maps x₁ (and the conditioning input, if any) to 2·⌊C/2⌋
  outputs for `kind="affine"` and ⌊C/2⌋ for `kind="additive"`. Give either
  `network_fn(out_channels)`, a factory called in `build` once C is known (e.g.
  `functools.partial(gflow.nets.GlowCNN, width=512)`; this layer then owns the
  network), or `network`, a Keras layer that several coupling layers may share
  (built by the first that needs it; NanoFlow's parameter sharing).
  """

  def __init__(self, network_fn=None, kind="affine", scale_fn="sigmoid", event_ndims=3,
               network=None, **kwargs):
    super().__init__(**kwargs)
    if kind not in KINDS:
      check_choice(kind, KINDS, "coupling kind")
    if (network_fn is None) == (network is None):
      raise ValueError("CouplingLayer needs exactly one of network_fn (a factory: the layer "
                       "owns the network) or network (a Keras layer, possibly shared).")
    if network is not None and not isinstance(network, keras.layers.Layer):
      raise TypeError(f"network must be a Keras layer; got {type(network).__name__}.")
    log_scale_fn(scale_fn)  # fail now on a bad name
    self.network_fn = network_fn
    self.kind = kind
    self.scale_fn = scale_fn
    self.event_ndims = event_ndims
    if network is not None:
      self.network = network

  def build(self, input_shape):
    c = input_shape[-1]
    if c is None or c < 2:
      raise ValueError(f"A coupling needs at least 2 known channels; got {input_shape}.")
    c2 = c // 2
    if self.network_fn is not None:
      self.network = self.network_fn(2 * c2 if self.kind == "affine" else c2)
    if not self.network.built:
      self.network.build(tuple(input_shape[:-1]) + (c - c2,))

  def bijector(self, conditioning=None, training=False):
    network = functools.partial(self.network, training=True) if training else self.network
    if self.kind == "affine":
      return AffineCoupling(network, scale_fn=self.scale_fn, event_ndims=self.event_ndims,
                            conditioning=conditioning, name=self.name)
    return AdditiveCoupling(network, event_ndims=self.event_ndims, conditioning=conditioning,
                            name=self.name)

  def forward_and_log_det(self, x, event_ndims, training=False, conditioning=None):
    return self.bijector(conditioning, training=training).forward_and_log_det(x, event_ndims)
