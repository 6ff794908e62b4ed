"""Shared traces (`train.shared_traces`): modules of one signature call one traced
function, with the unrolled pass's loss, gradients and BatchNorm statistics."""

import numpy as np
import pytest
import tensorflow as tf

from gflow.layers.shared_trace import shared_trace_scope
from gflow.noise import Noise
from gflow.train.trainer import build_model
from tests.test_denseflow import tiny_config as denseflow_tiny_config


def _graph(model, x):
  def fn(x, seed):
    with shared_trace_scope():
      return tf.reduce_mean(model.bits_per_dim(x, seed=Noise(seed), training=True))
  return tf.function(fn).get_concrete_function(x, tf.constant([3, 4])).graph


@pytest.fixture(scope="module")
def denseflow():
  """Block 1: one unit of 3 modules of the same shape; block 2: one module."""
  c = denseflow_tiny_config()
  c.model.units, c.model.modules = (1, 1), (3, 1)
  model = build_model(c, (8, 8, 1))
  x = tf.cast(tf.random.stateless_uniform([16, 8, 8, 1], [1, 2], 0, 256, tf.int32), tf.float32)
  model.initialize(x + 0.5)
  return model, x


def _run(model, x, shared):
  variables = list(model.trainable_variables)

  def fn(x, seed):
    with tf.GradientTape() as tape, shared_trace_scope(shared):
      loss = tf.reduce_mean(model.bits_per_dim(x, seed=Noise(seed), training=True))
    return loss, tape.gradient(loss, variables)
  concrete = tf.function(fn).get_concrete_function(x, tf.constant([3, 4]))
  loss, grads = concrete(x, tf.constant([3, 4]))
  call_ops = [op for op in concrete.graph.get_operations()
              if op.type in ("PartitionedCall", "StatefulPartitionedCall")]
  calls = len(call_ops)
  # Grappler specialises a function per distinct constant input: a constant fed to
  # any call (the tape's zero gradient of an output without one) would make it
  # optimise a copy of the backward function per module
  constant_inputs = [op.name for op in call_ops for t in op.inputs if t.op.type == "Const"]
  assert not constant_inputs, constant_inputs
  stats = [v.numpy() for v in model.layer.variables if "moving_" in v.path]
  return loss.numpy(), [g.numpy() for g in grads], stats, len(concrete.graph.get_operations()), \
      calls


def test_shared_traces_give_the_unrolled_loss_gradients_and_statistics(denseflow):
  """(With remat on top: tests/test_remat.py, which runs DenseFlow in shared traces.)"""
  model, x = denseflow
  start = [v.numpy() for v in model.layer.variables]
  results = []
  for shared in (False, True):
    for v, value in zip(model.layer.variables, start):
      v.assign(value)
    results.append(_run(model, x, shared))
  (loss0, grads0, stats0, ops0, calls0), (loss1, grads1, stats1, ops1, calls1) = results
  initial = [s for s, v in zip(start, model.layer.variables) if "moving_" in v.path]
  assert min(np.abs(a - b).max() for a, b in zip(stats0, initial)) > 1e-4  # stats moved
  assert max(np.abs(g).max() for g in grads0) > 1e-2
  # 4 modules in 2 signatures: each module calls its signature's function, and its
  # gradient function
  assert calls0 == 0 and calls1 == 8 and ops1 < 0.6 * ops0, (calls0, calls1, ops0, ops1)
  np.testing.assert_allclose(loss1, loss0, rtol=1e-6)
  for g1, g0, v in zip(grads1, grads0, model.trainable_variables):
    np.testing.assert_allclose(g1, g0, rtol=1e-4, atol=1e-6 * np.abs(g0).max() + 1e-9,
                               err_msg=v.path)
  for a, b in zip(stats1, stats0):  # each module's own statistics, updated once
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assigns = [op for op in _graph(model, x).get_operations() if op.type == "AssignVariableOp"]
  norms = [v for v in model.layer.variables if "moving_" in v.path]
  assert len(assigns) == len(norms), (len(assigns), len(norms))  # statistics only


def _xla_step(model, whole_step):
  """The training loss and gradients, XLA compiling the whole step (`whole_step`) or
  each shared module, recomputed in the backward pass."""
  from gflow.layers.remat import recompute_scope
  variables = list(model.trainable_variables)

  def fn(x, seed):
    with (tf.GradientTape() as tape, shared_trace_scope(jit_compile=not whole_step),
          recompute_scope(not whole_step)):
      loss = tf.reduce_mean(model.bits_per_dim(x, seed=Noise(seed), training=True))
    return loss, tape.gradient(loss, variables)
  return tf.function(fn, jit_compile=whole_step)


def _assert_compiled_once(step, x):
  """A new batch and seed each call: the later calls run what the first compiled."""
  import time
  seconds = []
  for i in range(3):
    batch = tf.cast(tf.random.stateless_uniform(x.shape, [i, 9], 0, 256, tf.int32), x.dtype)
    start = time.perf_counter()
    loss, _ = step(batch, tf.constant([i, 5]))
    assert np.isfinite(loss.numpy())
    seconds.append(time.perf_counter() - start)
  assert max(seconds[1:]) < 0.2 * seconds[0], seconds


def test_under_xla_the_modules_run_unrolled_and_a_new_batch_does_not_recompile(denseflow):
  """Shared calls inside a step XLA compiles as a whole made XLA take their inputs (the
  batch) for compile-time constants: every step compiled again (a tiny DenseFlow:
  ~7 s per step instead of ~0.02 s). There the modules run unrolled."""
  model, x = denseflow
  step = _xla_step(model, whole_step=True)
  graph = step.get_concrete_function(x, tf.constant([3, 4])).graph
  assert not [op for op in graph.get_operations()
              if op.type in ("PartitionedCall", "StatefulPartitionedCall")]
  _assert_compiled_once(step, x)


def test_xla_per_module_with_remat_compiles_once(denseflow):
  """Each shared module function XLA compiles, recomputed in the backward pass: a new
  batch runs the compiled programs. (A nested function inside them made XLA take its
  inputs for compile-time constants and compile again at every call.)"""
  model, x = denseflow
  _assert_compiled_once(_xla_step(model, whole_step=False), x)


def test_xla_per_module_trains_what_the_graph_step_trains(tmp_path):
  """`train.jit_scope="modules"`: XLA compiles each shared module function, forward and
  backward, the step around them stays a graph, and training ends where the graph
  step's does (weights, optimizer slots, EMA)."""
  from gflow.train import Trainer
  from tests.test_train import assert_trains_alike
  c = denseflow_tiny_config()
  c.train.update(dict(num_steps=3, warmup_steps=0, learning_rate=5e-3, grad_clip_norm=0.0,
                      ema_decay=0.9, batch_size=8, init_batch_size=16, remat=True,
                      checkpoint_every=1000, eval_every=1000, sample_every=1000))
  assert_trains_alike(c, tmp_path, dict(jit_compile=False, jit_scope="step"),
                      dict(jit_compile=True, jit_scope="modules"), rtol=1e-3, atol=1e-4,
                      # the attention's output bias feeds the coupling net's BatchNorm
                      zero_gradient=["attend..proj..bias"])
  t = Trainer(c, str(tmp_path / "plan"), verbose=False)
  t._make_train_step()
  assert (t._xla, t._xla_modules) == (False, True)


def test_xla_per_module_needs_shared_traces():
  from gflow.train.validate import ConfigError, validate
  c = denseflow_tiny_config()
  c.train.jit_compile, c.train.jit_scope, c.train.shared_traces = True, "modules", False
  with pytest.raises(ConfigError, match="jit_scope='modules'.*needs config.train.shared_traces"):
    validate(c)
  c.train.jit_scope = "module"
  with pytest.raises(ConfigError, match="did you mean 'modules'"):
    validate(c)


def test_evaluation_in_shared_traces_gives_the_unrolled_figures(denseflow):
  """The trainer's and gflow-eval's evaluation trace the modules once per signature too
  (the inference signatures: BatchNorm by its moving statistics)."""
  from gflow.train.evaluation import Evaluator
  model, x = denseflow
  dataset = tf.data.Dataset.from_tensor_slices(x).batch(8)
  figures, calls = [], []
  for shared in (False, True):
    evaluator = Evaluator(model, shared_traces=shared)
    figures.append(evaluator(dataset, seed=3))
    graph = evaluator._fn.get_concrete_function(x[:8], tf.constant([3, 0])).graph
    calls.append(sum(op.type in ("PartitionedCall", "StatefulPartitionedCall")
                     for op in graph.get_operations()))
  assert calls == [0, 4], calls  # 4 modules, each calling its signature's function
  assert figures[0].keys() == figures[1].keys()
  for name in figures[0]:
    assert np.all(np.isfinite(figures[0][name]))
    np.testing.assert_allclose(figures[1][name], figures[0][name], rtol=1e-6, err_msg=name)


def _calls(graph):
  return [op for op in graph.get_operations()
          if op.type in ("PartitionedCall", "StatefulPartitionedCall")]


def _samples_in_graph(model, shared, n=4):
  def fn(seed):
    with shared_trace_scope(shared):
      return model.sample(n, seed=seed, temperature=0.9)
  concrete = tf.function(fn).get_concrete_function(tf.constant([5, 6]))
  return concrete(tf.constant([5, 6])).numpy(), _calls(concrete.graph)


def _glow():
  from tests.conftest import glow_config
  c = glow_config("digits")
  c.model.levels, c.model.steps, c.model.width = 2, 3, 8
  model = build_model(c, (8, 8, 1))
  x = tf.random.stateless_uniform([16, 8, 8, 1], [3, 4], 0, 256, tf.int32)
  model.initialize(tf.cast(x, tf.float32) + 0.5)
  # move every variable off its initial value (zero-initialised last convolutions would
  # leave the couplings identities and the check blind to a wrong module's weights)
  for i, v in enumerate(model.layer.variables):
    if v.dtype.startswith("float"):
      v.assign(v + 0.05 * tf.random.stateless_normal(v.shape, [i, 9], dtype=v.dtype))
  return model


@pytest.mark.parametrize("name", ["denseflow", "glow"])
def test_sampling_in_shared_traces_gives_the_unrolled_samples(name, denseflow):
  """The inverse (sampling: the trainer's samples, gflow-sample) runs each module through
  its signature's shared inverse function, with the unrolled samples, in a graph and
  eagerly."""
  if name == "denseflow":
    model, modules, kinds = denseflow[0], 4, 2  # block 1's 3 modules share one trace
  else:
    model, modules, kinds = _glow(), 6, 2  # 3 steps at each of 2 levels
  unrolled, calls = _samples_in_graph(model, False)
  assert not calls
  shared, calls = _samples_in_graph(model, True)
  assert len(calls) == modules, len(calls)
  assert len({op.get_attr("f").name for op in calls}) == kinds
  assert np.all(np.isfinite(unrolled)) and np.std(unrolled) > 0
  np.testing.assert_allclose(shared, unrolled, rtol=1e-5, atol=1e-4)
  with shared_trace_scope():
    eager = model.sample(4, seed=tf.constant([5, 6]), temperature=0.9).numpy()
  np.testing.assert_allclose(eager, unrolled, rtol=1e-5, atol=1e-4)
  if name == "glow":  # both paths against the TFP bijector's inverse of the same latent
    z = tf.random.stateless_normal([4, 8, 8, 1], seed=[5, 6]) * 0.9
    np.testing.assert_allclose(unrolled, model.bijector.inverse(z).numpy(), rtol=1e-5,
                               atol=1e-4)
