"""Gradient checkpointing (`train.remat`) changes no result: the same loss, gradients and
BatchNorm statistics as the plain pass, with the checkpointed modules recomputed."""

import numpy as np
import pytest
import tensorflow as tf

from gflow.layers import recompute_scope
from gflow.layers.shared_trace import shared_trace_scope
from gflow.noise import Noise
from gflow.train import Trainer
from gflow.train.trainer import build_model
from tests.test_denseflow import tiny_config as denseflow_tiny_config


def _ops(fn, *args, kinds=("Conv2D",)):
  graph = fn.get_concrete_function(*args).graph
  return sum(op.type in kinds for op in graph.get_operations())


CALLS = ("PartitionedCall", "StatefulPartitionedCall")


def _call_outputs(fn, *args):
  """The outputs of the forward function calls in `fn`'s graph: with a gradient to come,
  a call also outputs the activations its backward function reads."""
  graph = fn.get_concrete_function(*args).graph
  return sum(len(op.outputs) for op in graph.get_operations()
             if op.type in CALLS and "backward" not in op.get_attr("f").name)


def _float_side_outputs(fn, *args):
  """Float outputs of the forward function calls in `fn`'s graph beyond (y, log_det)."""
  graph = fn.get_concrete_function(*args).graph
  return sum(o.dtype.is_floating for op in graph.get_operations()
             if op.type in CALLS and "backward" not in op.get_attr("f").name
             for o in op.outputs[2:])


def _compiled_calls(fn, *args):
  """(all forward calls compiled by XLA, all backward calls compiled), over the function
  calls in `fn`'s graph (with at least one of each)."""
  graph = fn.get_concrete_function(*args).graph
  flags = {True: [], False: []}
  for op in graph.get_operations():
    if op.type in CALLS:
      f = graph._get_function(op.get_attr("f").name).cached_definition
      flags["backward" in f.signature.name].append(
          "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b)
  assert flags[False] and flags[True], flags
  return all(flags[False]), all(flags[True])


@pytest.fixture(scope="module")
def denseflow():
  c = denseflow_tiny_config()
  model = build_model(c, (8, 8, 1))
  x = tf.cast(tf.random.stateless_uniform([16, 8, 8, 1], [1, 2], 0, 256, tf.int32), tf.float32)
  model.initialize(x + 0.5)
  return model, x


@pytest.mark.parametrize("mode", ["graph", "xla", "modules"])
def test_remat_gives_the_plain_loss_gradients_and_batchnorm_statistics(denseflow, mode):
  """DenseFlow as it trains by default, its modules in shared traces: in a graph, in a
  step XLA compiles whole, or with XLA compiling each shared function (`modules`), where
  the forward programs keep no activations either."""
  model, x = denseflow
  xla = mode == "xla"
  variables = list(model.trainable_variables)
  state = [v for v in model.layer.variables if not v.trainable]
  norms = [v for v in state if "moving_" in v.path]
  assert norms  # DenseFlow's coupling networks hold BatchNorm statistics
  start = [v.numpy() for v in model.layer.variables]

  def step(remat):
    def fn(x, seed):
      with (tf.GradientTape() as tape, shared_trace_scope(jit_compile=mode == "modules"),
            recompute_scope(remat, xla=xla)):
        loss = tf.reduce_mean(model.bits_per_dim(x, seed=Noise(seed), training=True))
      return loss, tape.gradient(loss, variables)
    return tf.function(fn, jit_compile=xla)

  results = {}
  for remat in (False, True):
    for v, value in zip(model.layer.variables, start):
      v.assign(value)
    fn = step(remat)
    loss, grads = fn(x, tf.constant([3, 4]))
    results[remat] = (loss.numpy(), [g.numpy() for g in grads], [v.numpy() for v in norms])
    if not xla:  # the shared functions' forward calls keep no activations for the gradient
      results[remat] += (_call_outputs(fn, x, tf.constant([3, 4])),)
    if mode == "modules":  # every shared function, forward and backward, is compiled
      assert _compiled_calls(fn, x, tf.constant([3, 4])) == (True, True)
      if remat:  # and the forward programs output no float beyond y and log_det: XLA
        # would copy each input it passed through for the backward program to read
        assert _float_side_outputs(fn, x, tf.constant([3, 4])) == 0
  (loss0, grads0, norms0, *convs0), (loss1, grads1, norms1, *convs1) = (results[False],
                                                                        results[True])
  moved = [np.abs(a - s).max() for a, s in zip(norms0, [v for v, var in zip(
      start, model.layer.variables) if "moving_" in var.path])]
  assert min(moved) > 1e-4  # the step updated every BatchNorm statistic
  assert max(np.abs(g).max() for g in grads0) > 1e-2
  np.testing.assert_allclose(loss1, loss0, rtol=1e-6)
  # With XLA per module, remat's backward is another program than the plain one, its sums
  # reassociated: a small gradient element moved by 6e-8 where its variable's largest is
  # 3e-3, in one suite run (not alone).
  scale = 1e-4 if mode == "modules" else 1e-5
  for g1, g0, v in zip(grads1, grads0, variables):
    np.testing.assert_allclose(g1, g0, rtol=1e-4, atol=scale * np.abs(g0).max(), err_msg=v.path)
  for a, b in zip(norms1, norms0):  # updated once, as without remat
    if mode == "modules":  # two programs (with and without remat), fused differently
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())
    else:
      np.testing.assert_array_equal(a, b)
  if not xla:
    assert convs1[0] < convs0[0] / 2, (convs0, convs1)


def test_the_trainer_switch_recomputes_glows_steps_with_the_same_gradients(tmp_path,
                                                                           tiny_config):
  """Glow's steps of flow are checkpoints too: the trainer's step under `train.remat`
  holds each step's convolutions twice and gives the plain step's loss and gradients."""
  tiny_config.train.jit_compile = False
  t = Trainer(tiny_config, str(tmp_path), verbose=False)
  t.initialize()
  batch = next(iter(t._dataset(16, 0)))
  out = {}
  for remat in (False, True):
    t.config.train.remat = remat  # read when the step is traced
    fn = tf.function(t._loss_and_grads)
    loss, grads = fn(batch)
    out[remat] = loss.numpy(), [g.numpy() for g in grads], _ops(fn, batch)
  assert out[True][2] > out[False][2], (out[False][2], out[True][2])
  assert max(np.abs(g).max() for g in out[False][1]) > 1e-3
  np.testing.assert_allclose(out[True][0], out[False][0], rtol=1e-6)
  for a, b in zip(out[True][1], out[False][1]):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_keras_batchnorm_inside_a_recomputed_layer_is_a_clear_error():
  import keras

  from gflow.layers import remat
  from gflow.nets.batch_norm import BatchNormalization
  plain = keras.Sequential([keras.layers.Dense(2), keras.layers.BatchNormalization()])
  with pytest.raises(TypeError, match="use gflow.nets.batch_norm.BatchNormalization"):
    with remat._held_statistics(plain):
      pass
  ours = keras.Sequential([keras.layers.Dense(2), BatchNormalization(momentum=0.9)])
  with remat._held_statistics(ours):
    assert ours.layers[1].momentum == 1.0
  assert ours.layers[1].momentum == 0.9
