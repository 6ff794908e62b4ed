"""Gradient checkpointing for flow layers: keep a layer's inputs, recompute its activations
in the backward pass.

A layer marked with `checkpoint(layer)` is a checkpoint boundary: inside
`recompute_scope()` (the trainer enters it with `train.remat`), the flow calls it
through `forward_and_log_det_of`, and its training forward runs without keeping its
intermediate activations; the backward pass runs it again, under a tape, and
differentiates that. Peak memory falls from the sum of every marked layer's
activations to their inputs plus one layer's activations, for about one more forward
pass of compute. Results are unchanged: the recomputation sees the same inputs,
variables and noise (stateless), so the loss and gradients equal the plain pass's.

BatchNorm in training mode updates its moving statistics as a side effect of the
forward pass; the recomputation holds them (`gflow.nets.batch_norm`), so each step
updates them once, as without checkpointing. Under XLA an optimisation barrier
keeps the compiler from merging the recomputation back into the forward pass.

A checkpoint layer that runs in a shared trace (`gflow.layers.shared_trace`)
recomputes inside its shared function instead, with the same results; `recomputed`
here serves the others (unrolled, or inside XLA).
"""

import contextlib
import threading

import keras
import tensorflow as tf
from tensorflow.python.eager import record  # the tape switch tf.recompute_grad uses

from gflow.nets.batch_norm import BatchNormalization, held_statistics

__all__ = ["checkpoint", "is_checkpoint", "recompute_scope", "recomputing", "recomputed",
           "trace_key"]

_STATE = threading.local()
_MARK = "_gflow_checkpoint"


def checkpoint(layer, trace_key=None):
  """Marks `layer` (a FlowLayer) as a checkpoint boundary and returns it. `trace_key`
  (a string) declares that layers with the same key run the same code given the same
  variable and input shapes, so they may share one trace (`gflow.layers.shared_trace`);
  the model builder that makes them knows."""
  setattr(layer, _MARK, True)
  layer._gflow_trace_key = trace_key
  return layer


def is_checkpoint(layer):
  return bool(getattr(layer, _MARK, False))


def trace_key(layer):
  """The `trace_key` `layer` was marked with (None: it shares no trace)."""
  return getattr(layer, "_gflow_trace_key", None)


@contextlib.contextmanager
def recompute_scope(enabled=True, xla=False):
  """Within it (at trace time), checkpoint layers recompute their activations in the
  backward pass. `xla`: the function being traced is compiled by XLA."""
  previous = getattr(_STATE, "scope", None)
  _STATE.scope = dict(xla=bool(xla)) if enabled else None
  try:
    yield
  finally:
    _STATE.scope = previous


def recomputing():
  """True inside an enabled `recompute_scope`."""
  return getattr(_STATE, "scope", None) is not None


@contextlib.contextmanager
def _held_statistics(layer):
  """BatchNorm layers inside `layer` normalise by the batch but leave their moving
  statistics as they are, on this thread (`gflow.nets.batch_norm`)."""
  plain = [l.name for l in layer._flatten_layers(include_self=True)
           if isinstance(l, keras.layers.BatchNormalization)
           and not isinstance(l, BatchNormalization)]
  if plain:
    raise TypeError(f"{layer.name} is recomputed for train.remat, but it holds Keras "
                    f"BatchNormalization layers ({', '.join(plain)}) whose statistics the "
                    "recomputation would update a second time: use "
                    "gflow.nets.batch_norm.BatchNormalization.")
  with held_statistics():
    yield


def recomputed(layer, fn, *inputs):
  """fn(*inputs) → (y, log_det), with `layer`'s activations recomputed for the gradient.

  `inputs` are tensors (x, and the conditioning if any); `fn` reads `layer`'s
  variables, which receive their gradients through the recomputation.
  """
  xla = _STATE.scope["xla"] if recomputing() else False

  @tf.custom_gradient
  def run(*args):
    with record.stop_recording():  # no tape keeps this pass's activations
      y, log_det = fn(*args)
    log_det = tf.convert_to_tensor(log_det, y.dtype) if not tf.is_tensor(log_det) else log_det

    def grad(dy, dlog, variables=None):
      # Recompute from the inputs, after the incoming gradient exists (so the graph
      # cannot schedule the recomputation, and its memory, before it is needed).
      with tf.control_dependencies([dy, dlog]):
        again = [tf.identity(a) for a in args]
      if xla:
        from tensorflow.compiler.tf2xla.python import xla as tfxla
        again = list(tfxla.optimization_barrier(*again))
      variables = list(variables or [])
      with _held_statistics(layer), tf.GradientTape() as tape:
        tape.watch(again)
        y2, log_det2 = fn(*again)
      grads = tape.gradient([y2, log_det2], again + variables, output_gradients=[dy, dlog],
                            unconnected_gradients=tf.UnconnectedGradients.ZERO)
      return grads[:len(again)], grads[len(again):]
    return (y, log_det), grad
  return run(*inputs)
