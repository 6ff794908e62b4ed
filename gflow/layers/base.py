"""The contract between Keras layers that own variables and the bijectors they build."""

import keras
import tensorflow_probability as tfp

__all__ = ["FlowLayer", "SequentialFlow", "is_initialized"]


class FlowLayer(keras.layers.Layer):
  """A Keras layer that owns a bijector's variables and builds the bijector on demand.

  Keras tracks the variables (training, `tf.train.Checkpoint`, `tf.distribute`);
  `bijector()` returns a fresh `tfp.bijectors.Bijector` (forward = data → latent)
  reading the current variable values, so TFP's per-tensor caches never go
  stale after a restore. Subclasses implement `build(input_shape)` and
  `bijector()`; those with data-dependent initialisation override
  `initialize(x)`, the explicit step that sets them from a batch and returns
  the layer's output for it.
  """

  def bijector(self):
    raise NotImplementedError

  def initialize(self, x):
    """Data-dependent initialisation from batch `x`; returns forward(x)."""
    return self.bijector().forward(x)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape)

  def call(self, x):
    return self.bijector().forward(x)

  def forward_and_log_det(self, x, event_ndims, training=False):
    """(forward(x), log|det J| summed over the last `event_ndims` axes) in one pass.

    The training path: it equals `bijector()`'s forward and fldj (tested) but
    evaluates every coupling network once and skips TFP's nested-Chain
    bookkeeping, which dominates tracing time for deep flows. `training` reaches
    networks with training-time behaviour (BatchNorm); `bijector()` always
    builds them in inference mode.
    """
    b = self.bijector()
    joint = getattr(b, "forward_and_log_det", None)
    if joint is not None:
      return joint(x, event_ndims)
    return b.forward(x), b.forward_log_det_jacobian(x, event_ndims=event_ndims)


class SequentialFlow(FlowLayer):
  """Applies flow layers in order: forward = f_n ∘ … ∘ f_1 (data → latent)."""

  def __init__(self, layers, **kwargs):
    super().__init__(**kwargs)
    if not layers:
      raise ValueError("SequentialFlow needs at least one layer.")
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

  def bijector(self):
    return tfp.bijectors.Chain([l.bijector() for l in reversed(self.flow_layers)],
                               name=self.name)

  def forward_and_log_det(self, x, event_ndims, training=False):
    total = 0.
    for layer in self.flow_layers:
      x, ldj = layer.forward_and_log_det(x, event_ndims, training=training)
      total += ldj
    return x, total

  def initialize(self, x):
    for layer in self.flow_layers:
      x = layer.initialize(x)
    return x

  def is_initialized(self):
    return all(is_initialized(l) for l in self.flow_layers)


def is_initialized(layer):
  """True when every data-dependent initialisation in `layer` has run (read eagerly)."""
  check = getattr(layer, "is_initialized", None)
  return True if check is None else bool(check())
