"""Flow layers whose data → latent direction draws noise or drops dimensions.

A `StochasticFlowLayer` maps x to z together with a per-example log-weight

    log w = log|det J| + (terms of the noise it adds or the dimensions it scores),

such that log p(x) ≥ E[log p(z) + log w] (equality for a bijection): cross-unit
coupling adds noise channels (−log N(e) + Σ log σ). Noise comes from a `gflow.Noise`, so a
likelihood bound is a deterministic function of its seed. The generative
direction `generate(z, noise, temperature)` needs no noise network: added
dimensions are removed.

Bijective `FlowLayer`s mix freely with stochastic layers in a
`StochasticSequential`; the functions `forward_and_bound`, `generate` and
`initialize_with_noise` dispatch on the kind of layer.
"""

import keras

from gflow.layers.base import inverse_of, is_initialized

__all__ = ["StochasticFlowLayer", "StochasticSequential", "forward_and_bound", "generate",
           "initialize_with_noise"]


class StochasticFlowLayer(keras.layers.Layer):
  """Base class: `forward_and_bound`, `generate`, `initialize`, `compute_output_shape`."""

  def forward_and_bound(self, x, noise, training=False):
    """(z, log w) per example; see the module docstring."""
    raise NotImplementedError

  def generate(self, z, noise, temperature=1.0):
    """The data-side value for latent z (drops the noise channels it added)."""
    raise NotImplementedError

  def initialize(self, x, noise):
    """Data-dependent initialisation from batch x; returns the latent."""
    return self.forward_and_bound(x, noise)[0]

  def call(self, x):
    raise TypeError(f"{self.__class__.__name__} draws noise: use forward_and_bound(x, noise) "
                    "or generate(z, noise).")


def forward_and_bound(layer, x, noise, training=False):
  """(z, log w) of a stochastic or bijective (event_ndims 3) flow layer."""
  if isinstance(layer, StochasticFlowLayer):
    return layer.forward_and_bound(x, noise, training=training)
  return layer.forward_and_log_det(x, 3, training=training)


def generate(layer, z, noise, temperature=1.0):
  """The inverse direction of a stochastic or bijective flow layer."""
  if isinstance(layer, StochasticFlowLayer):
    return layer.generate(z, noise, temperature)
  return inverse_of(layer, z)


def initialize_with_noise(layer, x, noise):
  """Data-dependent initialisation of a stochastic or bijective flow layer."""
  if isinstance(layer, StochasticFlowLayer):
    return layer.initialize(x, noise)
  return layer.initialize(x)


class StochasticSequential(StochasticFlowLayer):
  """Applies flow layers in order, data → latent; layer i draws from `noise.fold(i)`."""

  def __init__(self, layers, **kwargs):
    super().__init__(**kwargs)
    if not layers:
      raise ValueError("StochasticSequential needs at least one layer.")
    self.flow_layers = list(layers)

  def build(self, input_shape):
    shape = tuple(input_shape)
    for layer in self.flow_layers:
      if not layer.built:
        layer.build(shape)
      shape = layer.compute_output_shape(shape)

  def compute_output_shape(self, input_shape):
    shape = tuple(input_shape)
    for layer in self.flow_layers:
      shape = layer.compute_output_shape(shape)
    return shape

  def forward_and_bound(self, x, noise, training=False):
    total = 0.
    for i, layer in enumerate(self.flow_layers):
      x, log_w = forward_and_bound(layer, x, noise.fold(i), training)
      total += log_w
    return x, total

  def generate(self, z, noise, temperature=1.0):
    for i in reversed(range(len(self.flow_layers))):
      z = generate(self.flow_layers[i], z, noise.fold(i), temperature)
    return z

  def initialize(self, x, noise):
    for i, layer in enumerate(self.flow_layers):
      x = initialize_with_noise(layer, x, noise.fold(i))
    return x

  def is_initialized(self):
    return all(is_initialized(layer) for layer in self.flow_layers)

