"""Several flow modules of one structure, their variables stacked: one variable per kind.

    forward = f_n ∘ … ∘ f_1, module i computing with slice i of every stacked variable

A deep flow repeats one module many times (DenseFlow-74-10: 74 glow-like modules in
11 units; 3,645 variables, 684 with its units stacked). Held one layer per module,
every module's variables are created, read, differentiated, updated and given
optimizer slots one by one, and each of these adds its own operations to the training
step's graph, so start-up time grows with the variable count. `StackedFlow(module_fn, count)` builds `count` modules to
learn their structure and initial values (in a `keras.StatelessScope`, so that their
own variables are never created), then holds each of the module's variables once,
with a leading axis of size `count`: module i is the first module (the template) run
with slice i of each (`keras.StatelessScope` again). The map, its inverse and its
log-det are the modules' own, in order; the initial values are the `count` modules'
own draws, so a stacked unit starts where the unstacked one would.

Inside a shared-trace scope every module runs through the template's shared function
(`gflow.layers.shared_trace`), with `train.remat` recomputed there; variable updates
(BatchNorm's statistics, ActNorm's data-dependent initialisation) come back per module
and are written to the stacked variable in one assignment.

The stacked variables are named by the template's structural keys
(`gflow.layers.variable_keys`), e.g. `flow_layers.2.network.conv1.kernel`, so a
checkpoint key says which module variable it stacks.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from gflow.layers import remat
from gflow.layers.base import FlowLayer, _forward_and_log_det, bijector_of, is_initialized
from gflow.layers.shared_trace import forward_with_values, inverse_with_values
from gflow.layers.variable_keys import model_variables

__all__ = ["StackedFlow"]


class StackedFlow(FlowLayer):
  """`count` modules made by `module_fn()` (FlowLayers of one structure that keep the
  shape), applied in order; each module variable held once, stacked over the modules."""

  def __init__(self, module_fn, count, **kwargs):
    super().__init__(**kwargs)
    if not callable(module_fn):
      raise TypeError(f"module_fn must make a flow module; got {type(module_fn).__name__}.")
    if int(count) != count or count < 1:
      raise ValueError(f"StackedFlow needs a module count >= 1; got {count!r}.")
    self.module_fn = module_fn
    self.count = int(count)

  def build(self, input_shape):
    shape = tuple(input_shape)
    with keras.StatelessScope(initialize_variables=False):  # their variables stay uncreated
      modules = [self.module_fn() for _ in range(self.count)]
      for module in modules:
        if not isinstance(module, FlowLayer):
          raise TypeError(f"{self.name}: module_fn must make FlowLayers; got "
                          f"{type(module).__name__}.")
        module.build(shape)
    out = tuple(modules[0].compute_output_shape(shape))
    if out != shape:
      raise ValueError(f"{self.name}: stacked modules must keep the shape; one maps {shape} "
                       f"to {out}.")
    keyed = [model_variables(m) for m in modules]
    for k, other in enumerate(keyed[1:], 1):
      if [(key, tuple(v.shape), v.dtype) for key, v in other.items()] != [
          (key, tuple(v.shape), v.dtype) for key, v in keyed[0].items()]:
        raise ValueError(f"{self.name}: module_fn made modules of different structures "
                         f"(module {k} differs from module 0 in its variables).")
    stacked = {}
    for key, first in keyed[0].items():
      initial = tf.stack([_initial_value(m[key]) for m in keyed])
      stacked[id(first)] = self.add_weight(
          name=key, shape=(self.count, *first.shape), dtype=first.dtype,
          trainable=first.trainable, initializer=_constant(initial),
          aggregation=first.aggregation)
    _forget_deferred([v for m in keyed for v in m.values()])
    # Untracked (object.__setattr__): Keras and checkpoints see only the stacked variables.
    object.__setattr__(self, "_template", modules[0])
    object.__setattr__(self, "_aligned", [stacked[id(v)] for v in modules[0].variables])

  @property
  def template(self):
    """The module the others are computed as (its variables are never created)."""
    return self._template

  def stacked_variable(self, variable):
    """The stacked variable that holds `variable`, a variable of the template."""
    for v, stacked in zip(self._template.variables, self._aligned):
      if v is variable:
        return stacked
    raise KeyError(f"{self.name}: {variable.path} is not a variable of its template.")

  def _slices(self):
    """[[slice i of each stacked variable, in `template.variables` order] for each i]."""
    per_variable = [tf.unstack(tf.convert_to_tensor(v), num=self.count) for v in self._aligned]
    return [[s[i] for s in per_variable] for i in range(self.count)]

  def _write(self, slices, news):
    """Assigns the updated slices ({variable index: {module: value}}), one assignment per
    stacked variable."""
    for j, by_module in sorted(news.items()):
      self._aligned[j].assign(tf.stack([by_module.get(i, slices[i][j])
                                        for i in range(self.count)]))

  def forward_and_log_det(self, x, event_ndims, training=False, conditioning=None):
    def run(layer, x, conditioning=None):
      return _forward_and_log_det(layer, x, event_ndims, training, conditioning)
    recompute = training and remat.recomputing() and remat.is_checkpoint(self._template)
    slices, news, total = self._slices(), {}, 0.
    for i, values in enumerate(slices):
      x, log_det, updated = forward_with_values(self._template, run, x, values, event_ndims,
                                                training, conditioning, recompute)
      total += log_det
      for j, new in updated.items():
        news.setdefault(j, {})[i] = new
    self._write(slices, news)
    return x, total

  def inverse(self, y, conditioning=None):
    def run(layer, y, conditioning=None):
      if conditioning is None:
        return layer.inverse(y)
      return layer.inverse(y, conditioning=conditioning)
    for values in reversed(self._slices()):
      y = inverse_with_values(self._template, run, y, values, conditioning)
    return y

  def initialize(self, x):
    template_vars = list(self._template.variables)
    slices, news = self._slices(), {}
    for i, values in enumerate(slices):
      with keras.StatelessScope(state_mapping=list(zip(template_vars, values))) as scope:
        x = self._template.initialize(x)
        after = [scope.get_current_value(v) for v in template_vars]
      for j, (old, new) in enumerate(zip(values, after)):
        if new is not old:
          news.setdefault(j, {})[i] = new
    self._write(slices, news)
    return x

  def is_initialized(self):
    template_vars = list(self._template.variables)
    for values in self._slices():
      with keras.StatelessScope(state_mapping=list(zip(template_vars, values))):
        if not is_initialized(self._template):
          return False
    return True

  def bijector(self, conditioning=None):
    modules = [_WithValues(self._template, values, conditioning, name=f"{self.name}_{i}")
               for i, values in enumerate(self._slices())]
    return tfp.bijectors.Chain(list(reversed(modules)), name=self.name)


class _WithValues(tfp.bijectors.Bijector):
  """A module's bijector computed with `values` in place of its variables.

  The map, inverse and log-det are the module's `bijector(conditioning)`'s, built
  and run inside a `keras.StatelessScope` mapping its variables to `values`.
  """

  def __init__(self, template, values, conditioning=None, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "WithValues") as name:
      self._template, self._values, self._conditioning = template, list(values), conditioning
      with self._scope():
        inner = bijector_of(template, conditioning)
      super().__init__(forward_min_event_ndims=inner.forward_min_event_ndims,
                       inverse_min_event_ndims=inner.inverse_min_event_ndims,
                       is_constant_jacobian=inner.is_constant_jacobian,
                       parameters=parameters, name=name)

  def _scope(self):
    return keras.StatelessScope(state_mapping=list(zip(self._template.variables, self._values)))

  def _forward(self, x):
    with self._scope():
      return bijector_of(self._template, self._conditioning).forward(x)

  def _inverse(self, y):
    with self._scope():
      return bijector_of(self._template, self._conditioning).inverse(y)

  def _forward_log_det_jacobian(self, x):
    with self._scope():
      inner = bijector_of(self._template, self._conditioning)
      return inner.forward_log_det_jacobian(x, event_ndims=inner.forward_min_event_ndims)


def _initial_value(variable):
  """A deferred (uncreated) Keras variable's initial value."""
  return tf.convert_to_tensor(variable._initializer(tuple(variable.shape), dtype=variable.dtype))


def _constant(value):
  return lambda shape, dtype=None: tf.cast(value, dtype or value.dtype)


def _forget_deferred(variables):
  """Drops `variables` from Keras' list of deferred variables, which would otherwise keep
  them (and create them on `initialize_all_variables`)."""
  from keras.src.backend.common import global_state
  pending = global_state.get_global_attribute("uninitialized_variables")
  if pending:
    ids = {id(v) for v in variables}
    pending[:] = [v for v in pending if id(v) not in ids]
