"""Trace each distinct flow module once and call it for every module like it.

A deep flow repeats one module many times (DenseFlow-74-10: 74 glow-like modules
in 11 distinct shapes). Unrolled in Python, every module adds its operations to the
step's graph, and tracing time grows with the depth. Inside `shared_trace_scope()`,
a checkpoint layer marked with a trace key (`gflow.layers.checkpoint(layer,
trace_key)`: its builder's word that layers with that key run the same code given
the same shapes) runs through a `tf.function` keyed by its signature (the trace
key, its variables' names, shapes and dtypes, the input's shape and dtype, event_ndims, training and
whether BatchNorm statistics are held for a recomputation):
the first module of a signature is traced with its variables mapped to arguments
(`keras.StatelessScope`), and every module of that signature calls the same
function with its own variables' values. Variable updates made inside (BatchNorm's
moving statistics) come back as outputs and are assigned to the calling module's
variables. Gradients reach each module's own variables through the reads of its
values. The results equal the unrolled pass's. The inverse (sampling, `inverse_of`)
shares its traces likewise (`traced_inverse`).

With `train.remat` a shared function recomputes inside itself: its forward call keeps
no activations for the gradient, and its backward function runs the module again from
the call's inputs and differentiates that (the BatchNorm updates of that second run
stay in its stateless scope). The step then holds nothing per variable for the
recomputation (DenseFlow-74-10's step graph with remat: 39,285 operations when each
module was recomputed around its call, 22,103, as without remat, now).

The recomputation differentiates the forward's own trace (a nested function traced
once), so a module's Python runs once per signature, not again for the backward pass
(not under XLA, which compiled a nested function again at every call).

With `shared_trace_scope(jit_compile=True)` (`train.jit_scope="modules"`) XLA compiles
each shared function on its own, and with remat the gradient is defined around the
compiled call, a second compiled function recomputing the module (`_recomputed_around`:
differentiated inside, the compiled forward would output its inputs for XLA to copy).

The functions are marked `_noinline`: TensorFlow would otherwise inline every call
back into the step before Grappler optimises it, so the runtime would still see
(and optimise) every module's operations; kept as calls, each signature's forward
and backward functions are optimised once (`_as_bits` keeps Grappler from
specialising them per call site). Inside a function that XLA compiles as a whole
(`jit_compile=True`) the modules run unrolled instead: XLA took the inputs of the
shared calls (the batch among them) for compile-time constants and compiled the step
again for every batch (25 s per step of a tiny DenseFlow, 0.02 s unrolled), inlined
or not.
"""

import contextlib
import threading

import keras
import tensorflow as tf

from gflow.nets.batch_norm import statistics_held
from gflow.xla_context import in_xla_cluster

__all__ = ["shared_trace_scope", "current_scope", "traced_forward", "traced_inverse", "shares",
           "signature", "in_xla_cluster", "forward_with_values", "inverse_with_values"]

_STATE = threading.local()


@contextlib.contextmanager
def shared_trace_scope(enabled=True, jit_compile=False):
  """Within it (at trace time), checkpoint layers share one trace per signature;
  `jit_compile`: XLA compiles each shared function on its own."""
  previous = getattr(_STATE, "scope", None)
  _STATE.scope = dict(jit_compile=bool(jit_compile), functions={}) if enabled else None
  try:
    yield
  finally:
    _STATE.scope = previous


def current_scope():
  """The enabled scope's state (None outside one); a recomputation in the backward pass
  runs after the scope has exited, so callers keep this and pass it on."""
  return getattr(_STATE, "scope", None)


def signature(layer, x, event_ndims, training, conditioning=None):
  """The key under which `layer` shares its trace, or None (it was marked without a
  trace key, so it shares none)."""
  from gflow.layers.remat import trace_key
  key = trace_key(layer)
  if key is None:
    return None
  variables = tuple((v.path.rsplit("/", 1)[-1], tuple(v.shape), str(v.dtype), v.trainable)
                    for v in layer.variables)
  cond = None if conditioning is None else (tuple(conditioning.shape), conditioning.dtype.name)
  return (key, variables, tuple(x.shape), x.dtype.name, event_ndims, bool(training), cond,
          statistics_held())


def shares(layer, x, event_ndims, training, conditioning=None):
  """True when `layer` would run through a shared function here: it has a trace key
  and the trace is not inside a function XLA compiles as a whole."""
  return (signature(layer, x, event_ndims, training, conditioning) is not None
          and not in_xla_cluster())


def traced_forward(scope, layer, run, x, event_ndims, training, conditioning=None,
                   recompute=False):
  """run(layer, x, conditioning) → (y, log_det), through `scope`'s (`current_scope()`)
  shared function for `layer`'s signature (traced on the first layer that has it).
  `recompute` (`train.remat`): the function keeps no activations for its gradient and
  its backward pass runs it again from its inputs (`gflow.layers.remat`)."""
  if signature(layer, x, event_ndims, training, conditioning) is None or in_xla_cluster():
    return run(layer, x, conditioning)
  variables = list(layer.variables)
  y, log_det, news = _shared_forward(scope, layer, run, x, _values(variables), event_ndims,
                                     training, conditioning, recompute)
  for j, new in news.items():
    variables[j].assign(new)
  return y, log_det


def forward_with_values(template, run, x, values, event_ndims, training, conditioning=None,
                        recompute=False):
  """run(template, x, conditioning) computed with `values` (tensors, one per variable of
  `template.variables`) in place of `template`'s variables → (y, log_det, {index: new
  value} of the variables the pass assigned). Through the current scope's shared
  function when `template` shares there, else inline; `recompute` as `traced_forward`.
  A layer holding several modules' variables stacked (`gflow.layers.StackedFlow`) runs
  each module this way with its slices."""
  scope = current_scope()
  if scope is not None and shares(template, x, event_ndims, training, conditioning):
    return _shared_forward(scope, template, run, x, values, event_ndims, training,
                           conditioning, recompute)
  forward, updated = _stateless_forward(template, run)
  if recompute:
    y, log_det, news = _recomputed(forward, x, values, conditioning,
                                   barrier=in_xla_cluster())
  else:
    y, log_det, news = forward(x, values, conditioning)
  return y, log_det, _from_bits(template, updated, news)


def inverse_with_values(template, run, y, values, conditioning=None):
  """run(template, y, conditioning) → x, computed with `values` in place of `template`'s
  variables; through the current scope's shared inverse function when `template`
  shares there, else inline."""
  scope = current_scope()
  if scope is not None and shares(template, y, None, False, conditioning):
    return _shared_inverse(scope, template, run, y, conditioning)(y, list(values), conditioning)
  with keras.StatelessScope(state_mapping=list(zip(template.variables, values))):
    return run(template, y, conditioning)


def _stateless_forward(template, run):
  """(forward, updated): forward(x, values, conditioning, record=True) → (y, log_det,
  [new value as bits of each assigned variable]) runs `template` with `values` for its
  variables in a `keras.StatelessScope`; `updated` lists the indices of the variables
  the pass assigned (BatchNorm's statistics), found when it runs (`record`)."""
  template_vars = list(template.variables)
  updated = []

  def forward(x, values, conditioning, record=True):
    mapping = list(zip(template_vars, values))
    with keras.StatelessScope(state_mapping=mapping) as stateless:
      before = [stateless.get_current_value(v) for v in template_vars]
      y, log_det = run(template, x, conditioning)
      news = [stateless.get_current_value(v) for v in template_vars]
    # only the variables the pass assigned (BatchNorm's statistics) come back
    if record:
      updated[:] = [j for j, (a, b) in enumerate(zip(before, news)) if b is not a]
    return y, tf.convert_to_tensor(log_det, y.dtype), [_as_bits(news[j]) for j in updated]
  return forward, updated


def _shared_forward(scope, template, run, x, values, event_ndims, training, conditioning,
                    recompute):
  """The shared function of `template`'s signature (traced on first use), called with
  `values` → (y, log_det, {index: new value})."""
  key = signature(template, x, event_ndims, training, conditioning) + (bool(recompute),)
  entry = scope["functions"].get(key)
  if entry is None:
    forward, updated = _stateless_forward(template, run)
    if recompute and not scope["jit_compile"]:
      # (not under XLA: it took a nested function's inputs for compile-time constants
      # and compiled the module again at every call)
      forward = _traced_once(forward)

    def fn(x, values, conditioning):
      if recompute and not scope["jit_compile"]:
        return _recomputed(forward, x, values, conditioning)
      return forward(x, values, conditioning)
    entry = scope["functions"][key] = (_shared_function(fn, scope), updated)
    if recompute and scope["jit_compile"]:
      entry = scope["functions"][key] = (
          _recomputed_around(entry[0], _shared_function(_backward(forward), scope)), updated)
  fn, updated = entry
  y, log_det, news = fn(x, list(values), conditioning)
  return y, log_det, _from_bits(template, updated, news)


def _from_bits(template, updated, news):
  """{index: value} of the assigned variables, from `forward`'s list of bits."""
  variables = list(template.variables)
  out = {}
  for j, new in zip(updated, news):
    dtype = tf.as_dtype(variables[j].dtype)
    out[j] = tf.bitcast(new, dtype) if new.dtype.is_integer and dtype.is_floating else new
  return out


def traced_inverse(scope, layer, run, y, conditioning=None):
  """run(layer, y, conditioning) → x, the inverse (sampling), through `scope`'s shared
  function for `layer`'s inverse signature (traced on the first layer that has it). The
  inverse assigns no variable and keeps nothing for a recomputation."""
  if signature(layer, y, None, False, conditioning) is None or in_xla_cluster():
    return run(layer, y, conditioning)
  return _shared_inverse(scope, layer, run, y, conditioning)(
      y, _values(layer.variables), conditioning)


def _shared_inverse(scope, template, run, y, conditioning):
  """The shared inverse function of `template`'s signature at (y, conditioning), traced
  on first use: (y, values, conditioning) → x."""
  key = signature(template, y, None, False, conditioning) + ("inverse",)
  fn = scope["functions"].get(key)
  if fn is None:
    template_vars = list(template.variables)

    def inverse(y, values, conditioning):
      with keras.StatelessScope(state_mapping=list(zip(template_vars, values))):
        return run(template, y, conditioning)
    fn = scope["functions"][key] = _shared_function(inverse, scope)
  return fn


def _values(variables):
  return [tf.convert_to_tensor(v.value) for v in variables]


def _shared_function(fn, scope):
  return tf.function(fn, jit_compile=scope["jit_compile"], autograph=False,
                     experimental_attributes={"_noinline": True})


def _traced_once(forward):
  """`forward` as a function traced on its first call (the forward pass, which records
  the updated variables) and called again by the recomputation: the backward pass
  differentiates that trace instead of running the module's Python (Keras layers, TFP
  bijectors) a second time (DenseFlow-74-10: 11 module traces fewer, ~4 s of tracing).
  Inside the shared function the call is inlined, so the runtime graph is the same."""
  fn = tf.function(lambda x, values, conditioning: forward(x, values, conditioning),
                   autograph=False)

  def call(x, values, conditioning, record=True):
    del record  # the trace recorded them
    return fn(x, list(values), conditioning)
  return call


def _backward(forward):
  """(x, values, conditioning, dy, dlog) → the gradients of `forward`'s (y, log_det) for
  its float inputs (None for the others), `forward` run again from the inputs (its
  variable updates dropped)."""
  def backward(x, values, conditioning, dy, dlog):
    flat = [x, *values] + ([] if conditioning is None else [conditioning])
    floats = [a for a in flat if a.dtype.is_floating]  # not the flags
    with tf.GradientTape() as tape:
      tape.watch(floats)
      y, log_det, _ = forward(x, values, conditioning, record=False)
    grads = iter(tape.gradient([y, log_det], floats, output_gradients=[dy, dlog],
                               unconnected_gradients=tf.UnconnectedGradients.ZERO))
    return [next(grads) if a.dtype.is_floating else None for a in flat]
  return backward


def _recomputed_around(forward_fn, backward_fn):
  """The call of a shared function XLA compiles (`forward_fn`), recomputed in the
  backward pass by another compiled function (`backward_fn`, `_backward`). The
  gradient is defined around the calls, in the step's graph: differentiated inside,
  the compiled forward would output its inputs (the batch and every variable's value)
  for its backward function to read, and XLA copies each such output; a copy of every
  weight then waited for the backward pass (DenseFlow-74-10, batch 8: the loss and
  gradients peaked at 4.75 GiB, 4.04 without the copies)."""
  def fn(x, values, conditioning):
    return _with_gradient(forward_fn, lambda *args: backward_fn(*args), x, values,
                          conditioning)
  return fn


def _recomputed(forward, x, values, conditioning, barrier=False):
  """forward(x, values, conditioning) → (y, log_det, statistics), differentiable in y
  and log_det with its activations recomputed in the backward pass: the gradient
  runs `forward` again from the inputs (its variable updates, which the stateless
  scope returns and this call does not, are dropped) and differentiates that."""
  backward = _backward(forward)

  def recompute(x, values, conditioning, dy, dlog):
    # Recompute from the inputs once the incoming gradient exists, so that the graph
    # cannot schedule the recomputation, and its memory, before it is needed.
    with tf.control_dependencies([dy, dlog]):
      x, values = tf.identity(x), [tf.identity(v) for v in values]
      conditioning = None if conditioning is None else tf.identity(conditioning)
    if barrier:  # inside XLA: keep the compiler from merging it into the forward pass
      from tensorflow.compiler.tf2xla.python import xla as tfxla
      flat = tfxla.optimization_barrier(x, *values)
      x, values = flat[0], list(flat[1:])
    return backward(x, values, conditioning, dy, dlog)
  return _with_gradient(forward, recompute, x, values, conditioning)


def _with_gradient(forward, backward, x, values, conditioning):
  """forward(x, values, conditioning) → (y, log_det, statistics), its gradient for the
  inputs given by backward(x, values, conditioning, dy, dlog) (`_backward`'s list)."""
  n = len(values)
  inputs = [x, *values] + ([] if conditioning is None else [conditioning])

  def unpack(flat):
    return flat[0], list(flat[1:1 + n]), (flat[1 + n] if conditioning is not None else None)

  @tf.custom_gradient
  def run(*flat):
    y, log_det, news = forward(*unpack(flat))

    def grad(dy, dlog, *unused, variables=None):
      if variables:
        raise ValueError(
            "A shared, recomputed module read variables it does not own: "
            f"{[v.name for v in variables]}; its layer must hold every variable it uses.")
      return backward(*unpack(flat), dy, dlog)
    return (y, log_det, *news), grad
  y, log_det, *news = run(*inputs)
  return y, log_det, news


def _as_bits(value):
  """A float tensor as integers of its width, bit for bit. The statistics leave the
  shared function as integers: a float output has no gradient here, and the tape
  would feed its backward function a fresh zero constant per call, which Grappler
  then specialises per call site (one optimised copy of the backward function per
  module, undoing the sharing); an integer output is not differentiable, so it gets
  none."""
  bits = {2: tf.int16, 4: tf.int32, 8: tf.int64}
  if not value.dtype.is_floating:
    return value
  return tf.bitcast(value, bits[value.dtype.size])
