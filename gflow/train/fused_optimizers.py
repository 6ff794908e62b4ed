"""Adam and Adamax that update each variable with one fused TensorFlow kernel.

Keras 3 writes an optimizer's update in `keras.ops`: about 30 graph operations per
variable (casts, the bias correction, three assignments). A deep flow has
thousands of variables (DenseFlow-45-6: 2,194), so the update alone was 89 % of
the training step's graph (70,216 of 78,719 operations): most of the time to trace
the step, and of Grappler's time before its first run. `FusedAdam` and
`FusedAdamax` compute the step's scalars (learning rate, β powers) once and update
each variable, with its slots, in one `ResourceApplyAdam` / `ResourceApplyAdaMax`
operation (TensorFlow's own kernels, on CPU, GPU and under XLA):

    Adam:   m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,
            θ ← θ − α·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m/(√v + ε)
    Adamax: m ← β₁m + (1 − β₁)g,  u ← max(β₂u, |g|),  θ ← θ − α/(1 − β₁ᵗ) · m/(u + ε)

which is Keras' `update_step` exactly, up to the order of floating-point
operations. In a graph the kernels run in calls of functions shared by chunks of up
to 32 variables (`gflow.train.chunked_calls`): DenseFlow-74-10's step graph holds
111 calls instead of 3,423 kernels, their gates and their inputs. They are Keras'
optimizers otherwise (the same slots, names, checkpoints, config, loss scaling and
`tf.distribute` handling); what the kernels do not cover (AMSGrad, sparse
gradients, a gradient of another dtype) goes through Keras' own update.

`apply_gated(gate, grads, variables)` applies the update where `gate` (a scalar bool
tensor) is true and leaves every variable, slot and the step count bit for bit as
they were where it is false: the gradients are selected to zero and the kernels
run with α = 0, β₁ = β₂ = 1 (m ← 1·m + 0·0, u ← max(1·u, 0), θ ← θ − 0). A training
step guards its update against a non-finite gradient this way without a `tf.cond`,
whose branch would capture every variable, slot and gradient (on DenseFlow-74-10,
thousands of inputs for Grappler to lower before the first step).
"""

import threading

import keras
import tensorflow as tf
from keras.src import backend

from gflow.train.chunked_calls import call_in_chunks

__all__ = ["FusedAdam", "FusedAdamax"]

_GATES = threading.local()  # {id(optimizer): gate} of the apply_gated calls in progress


class _FusedUpdate:
  """Mixin over a Keras TensorFlow optimizer: one kernel call per variable."""

  def can_gate(self, grads, variables):
    """True if `apply_gated` can hold this update (the fused kernels run for all of it)."""
    variables = [v.value if isinstance(v, backend.Variable) else v for v in variables]
    return self._fusable([(g, v) for g, v in zip(grads, variables) if g is not None])

  def apply_gated(self, gate, grads, variables):
    """`apply(grads, variables)` where the scalar bool `gate` is true; where it is false,
    nothing changes (module doc). Needs `can_gate(grads, variables)`."""
    if not self.can_gate(grads, variables):
      raise ValueError(f"{type(self).__name__} cannot gate this update (AMSGrad, sparse "
                       "gradients or a gradient dtype other than its variable's).")
    gate = tf.convert_to_tensor(gate, tf.bool)
    gates = _GATES.__dict__.setdefault("by_optimizer", {})  # per thread: replica threads
    gates[id(self)] = gate
    try:
      self.apply(grads, variables)  # Keras adds 1 to the step count after the update
    finally:
      del gates[id(self)]
    self.iterations.assign_sub(1 - tf.cast(gate, self.iterations.dtype))

  def _trackable_children(self, save_type="checkpoint", **kwargs):
    """The optimizer's own variables. Keras also tracks the model's weights it updates
    (`_trainable_variables`): a checkpoint would save every weight a second time, under
    positional keys (`optimizer/_trainable_variables/<i>`) that a refactor can reorder."""
    children = super()._trackable_children(save_type, **kwargs)
    children.pop("_trainable_variables", None)
    return children

  def _fusable(self, grads_and_vars):
    return all(isinstance(g, tf.Tensor) and g.dtype == v.dtype for g, v in grads_and_vars)

  @tf.autograph.experimental.do_not_convert  # plain Python: autograph would convert it per call
  def _backend_update_step(self, grads, trainable_variables, learning_rate):
    variables = [v.value if isinstance(v, backend.Variable) else v
                 for v in trainable_variables]
    grads = [tf.convert_to_tensor(g) if not isinstance(g, tf.IndexedSlices) else g
             for g in grads]
    gate = getattr(_GATES, "by_optimizer", {}).get(id(self))
    if not self._fusable(list(zip(grads, variables))):
      if gate is not None:
        raise ValueError(f"{type(self).__name__} cannot gate an update it does not fuse.")
      return super()._backend_update_step(grads, trainable_variables, learning_rate)
    grads_and_vars = self._all_reduce_sum_gradients(list(zip(grads, variables)))
    step = tf.cast(self.iterations + 1, tf.float32)
    scalars = self._scalars(tf.cast(learning_rate, tf.float32), step)
    if gate is not None:  # a no-op where the gate is closed (module doc)
      closed = dict(lr=0.0, beta1=1.0, beta2=1.0)
      scalars = {k: tf.where(gate, x, closed[k]) if k in closed else x
                 for k, x in scalars.items()}

    def update(distribution, grads_and_vars):
      """Every variable's kernel (each local copy's, under mirroring), in calls of up
      to CHUNK variables of one device (`gflow.train.chunked_calls`)."""
      local = distribution.experimental_local_results
      by_device = {}
      for grad, var in grads_and_vars:
        first, second = self._slots(var)
        for row in zip(local(var), local(first), local(second), local(grad)):
          by_device.setdefault(row[0].device, []).append(row)
      body = type(self)._gated_kernels if gate is not None else type(self)._kernels
      constants = [scalars] + ([gate] if gate is not None else [])
      for device, rows in by_device.items():
        with tf.device(device):
          call_in_chunks(body, [(var.handle, first.handle, second.handle, grad)
                                for var, first, second, grad in rows], constants)
    if not _local_copies(self._distribution_strategy):
      self._update_per_variable(grads_and_vars, scalars, gate)
      return
    tf.__internal__.distribute.interim.maybe_merge_call(
        update, self._distribution_strategy, grads_and_vars)

  def _update_per_variable(self, grads_and_vars, scalars, gate):
    """Each variable through `extended.update` (strategies whose variables are not
    copies on local devices)."""
    if gate is not None:
      zeros = {dtype: tf.zeros([], dtype) for dtype in {g.dtype for g, _ in grads_and_vars}}
      grads_and_vars = [(tf.where(gate, g, zeros[g.dtype]), v) for g, v in grads_and_vars]

    def update(distribution, grads_and_vars):
      for grad, var in grads_and_vars:
        distribution.extended.update(var, self._apply_one, args=(grad,),
                                     kwargs=dict(scalars=scalars), group=False)
    tf.__internal__.distribute.interim.maybe_merge_call(
        update, self._distribution_strategy, grads_and_vars)

  @tf.autograph.experimental.do_not_convert
  def _apply_one(self, var, grad, scalars):
    m, v = self._slots(var)
    return self._kernel(var.handle, m.handle, v.handle, grad, scalars)

  @classmethod
  def _kernels(cls, rows, scalars):
    """Each row's (variable, first slot, second slot, gradient) kernel, with the
    step's scalars ({name: float32 tensor}, `_scalars`)."""
    for var, first, second, grad in rows:
      cls._kernel(var, first, second, grad, scalars)

  @classmethod
  def _gated_kernels(cls, rows, scalars, gate):
    """`_kernels` with each gradient selected to zero where the gate is closed."""
    zero = {}
    gated = []
    for var, first, second, grad in rows:
      zero.setdefault(grad.dtype, tf.zeros([], grad.dtype))
      gated.append((var, first, second, tf.where(gate, grad, zero[grad.dtype])))
    cls._kernels(gated, scalars)

  def _slots(self, var):
    """`var`'s two slot variables."""
    i = self._get_variable_index(var)
    first, second = self._slot_lists()
    return first[i].value, second[i].value

  @staticmethod
  def _cast(scalars, dtype):
    return {k: tf.cast(v, dtype) for k, v in scalars.items()}


def _local_copies(strategy):
  """True if each variable is one variable, or one copy per local device (mirrored):
  then the update runs per device on the copies."""
  if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
    return True  # the default strategy
  return isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.OneDeviceStrategy,
                               tf.distribute.MultiWorkerMirroredStrategy))


@keras.saving.register_keras_serializable(package="gflow")
class FusedAdam(_FusedUpdate, keras.optimizers.Adam):
  """`keras.optimizers.Adam` with one `ResourceApplyAdam` per variable (module doc)."""

  def _fusable(self, grads_and_vars):
    return not self.amsgrad and super()._fusable(grads_and_vars)

  def _slot_lists(self):
    return self._momentums, self._velocities

  def _scalars(self, lr, step):
    return dict(lr=lr, beta1=tf.constant(self.beta_1, tf.float32),
                beta2=tf.constant(self.beta_2, tf.float32),
                beta1_power=tf.pow(tf.cast(self.beta_1, tf.float32), step),
                beta2_power=tf.pow(tf.cast(self.beta_2, tf.float32), step),
                epsilon=tf.constant(self.epsilon, tf.float32))

  @classmethod
  def _kernel(cls, var, m, v, grad, scalars):
    s = cls._cast(scalars, grad.dtype)
    return tf.raw_ops.ResourceApplyAdam(
        var=var, m=m, v=v, beta1_power=s["beta1_power"],
        beta2_power=s["beta2_power"], lr=s["lr"], beta1=s["beta1"], beta2=s["beta2"],
        epsilon=s["epsilon"], grad=grad, use_locking=False, use_nesterov=False)


@keras.saving.register_keras_serializable(package="gflow")
class FusedAdamax(_FusedUpdate, keras.optimizers.Adamax):
  """`keras.optimizers.Adamax` with one `ResourceApplyAdaMax` per variable (module doc)."""

  def _slot_lists(self):
    return self._m, self._u

  def _scalars(self, lr, step):
    return dict(lr=lr, beta1=tf.constant(self.beta_1, tf.float32),
                beta2=tf.constant(self.beta_2, tf.float32),
                beta1_power=tf.pow(tf.cast(self.beta_1, tf.float32), step),
                epsilon=tf.constant(self.epsilon, tf.float32))

  @classmethod
  def _kernel(cls, var, m, u, grad, scalars):
    s = cls._cast(scalars, grad.dtype)
    return tf.raw_ops.ResourceApplyAdaMax(
        var=var, m=m, v=u, beta1_power=s["beta1_power"], lr=s["lr"],
        beta1=s["beta1"], beta2=s["beta2"], epsilon=s["epsilon"], grad=grad,
        use_locking=False)
