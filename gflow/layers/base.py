"""The contract between Keras layers that own variables and the bijectors they build."""

import keras
import tensorflow_probability as tfp

from gflow.layers import remat, shared_trace

__all__ = ["FlowLayer", "SequentialFlow", "bijector_of", "forward_and_log_det_of", "inverse_of",
           "is_initialized"]


class FlowLayer(keras.layers.Layer):
  """A Keras layer that owns a bijector's variables and builds the bijector on demand.

  Keras tracks the variables (training, `tf.train.Checkpoint`, `tf.distribute`);
  `bijector(conditioning=None)` returns a fresh `tfp.bijectors.Bijector`
  (forward = data → latent) reading the current variable values, so TFP's
  per-tensor caches never go stale after a restore. Subclasses implement
  `build(input_shape)` and `bijector(conditioning=None)`; those with
  data-dependent initialisation override `initialize(x)`, the explicit step that
  sets them from a batch and returns the layer's output for it.

  `conditioning` (a tensor with the batch's leading axis: WaveFlow's upsampled
  mel spectrogram, NanoFlow's per-flow embedding, …) reaches every layer that
  uses it, through `bijector` and `forward_and_log_det` alike; layers that do
  not use it ignore it.
  """

  def bijector(self, conditioning=None):
    raise NotImplementedError

  def initialize(self, x):
    """Data-dependent initialisation from batch `x`; returns forward(x)."""
    return self.bijector().forward(x)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape)

  def call(self, x, conditioning=None):
    return bijector_of(self, conditioning).forward(x)

  def forward_and_log_det(self, x, event_ndims, training=False, conditioning=None):
    """(forward(x), log|det J| summed over the last `event_ndims` axes) in one pass.

    The training path: it equals `bijector()`'s forward and fldj (checked for
    every layer by `gflow.testing.check_flow_layer`) but evaluates every coupling
    network once and skips TFP's nested-Chain bookkeeping, which dominates
    tracing time for deep flows. `training` reaches networks with training-time
    behaviour (BatchNorm); `bijector()` always builds them in inference mode.
    """
    b = bijector_of(self, conditioning)
    joint = getattr(b, "forward_and_log_det", None)
    if joint is not None:
      return joint(x, event_ndims)
    return b.forward(x), b.forward_log_det_jacobian(x, event_ndims=event_ndims)

  def inverse(self, y, conditioning=None):
    """The inverse map, latent → data: `bijector()`'s inverse. Layers that hold other
    flow layers invert them through `inverse_of`, so that checkpoint layers among them
    share their traces (`gflow.layers.shared_trace`)."""
    return bijector_of(self, conditioning).inverse(y)


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

  def bijector(self, conditioning=None):
    return tfp.bijectors.Chain(
        [bijector_of(l, conditioning) for l in reversed(self.flow_layers)], name=self.name)

  def forward_and_log_det(self, x, event_ndims, training=False, conditioning=None):
    total = 0.
    for layer in self.flow_layers:
      x, ldj = forward_and_log_det_of(layer, x, event_ndims, training, conditioning)
      total += ldj
    return x, total

  def inverse(self, y, conditioning=None):
    for layer in reversed(self.flow_layers):
      y = inverse_of(layer, y, conditioning)
    return y

  def initialize(self, x):
    for layer in self.flow_layers:
      x = layer.initialize(x)
    return x

  def is_initialized(self):
    return all(is_initialized(l) for l in self.flow_layers)


def bijector_of(layer, conditioning=None):
  """`layer.bijector(conditioning)`; a layer written without conditioning is called
  without it when there is none (third-party layers keep working)."""
  if conditioning is None:
    return layer.bijector()
  return layer.bijector(conditioning=conditioning)


def forward_and_log_det_of(layer, x, event_ndims, training=False, conditioning=None):
  """`layer.forward_and_log_det`, passing `conditioning` only when there is one. A
  checkpoint layer (`gflow.layers.remat`) runs through its signature's shared trace
  inside a shared-trace scope (`gflow.layers.shared_trace`), and, training inside a
  recompute scope, keeps only its inputs for the backward pass."""
  if not remat.is_checkpoint(layer):
    return _forward_and_log_det(layer, x, event_ndims, training, conditioning)
  def run(l, x, conditioning=None):
    return _forward_and_log_det(l, x, event_ndims, training, conditioning)
  recompute = training and remat.recomputing()
  scope = shared_trace.current_scope()
  if scope is not None and shared_trace.shares(layer, x, event_ndims, training, conditioning):
    # the shared function recomputes inside itself: no per-variable work in the step
    return shared_trace.traced_forward(scope, layer, run, x, event_ndims, training,
                                       conditioning, recompute=recompute)
  if recompute:
    return remat.recomputed(layer, lambda *a: run(layer, *a),
                            *([x] if conditioning is None else [x, conditioning]))
  return run(layer, x, conditioning)


def inverse_of(layer, y, conditioning=None):
  """`layer.inverse`, passing `conditioning` only when there is one; a checkpoint layer
  runs through its signature's shared inverse trace inside a shared-trace scope (for
  sampling: DenseFlow-74-10's 74 modules in 11 traces)."""
  def run(l, y, conditioning=None):
    if not isinstance(l, FlowLayer):  # a layer that only builds a bijector
      return bijector_of(l, conditioning).inverse(y)
    return l.inverse(y) if conditioning is None else l.inverse(y, conditioning=conditioning)
  scope = shared_trace.current_scope()
  if (remat.is_checkpoint(layer) and scope is not None
      and shared_trace.shares(layer, y, None, False, conditioning)):
    return shared_trace.traced_inverse(scope, layer, run, y, conditioning)
  return run(layer, y, conditioning)


def _forward_and_log_det(layer, x, event_ndims, training, conditioning):
  if conditioning is None:
    return layer.forward_and_log_det(x, event_ndims, training=training)
  return layer.forward_and_log_det(x, event_ndims, training=training,
                                   conditioning=conditioning)


def is_initialized(layer):
  """True when every data-dependent initialisation in `layer` has run (read eagerly)."""
  check = getattr(layer, "is_initialized", None)
  return True if check is None else bool(check())
