"""StackedFlow (`model.stack_modules`): modules of one structure with their variables stacked
compute what the same modules held one layer each compute."""

import functools
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from gflow import examples
from gflow import layers as gl
from gflow import nets
from gflow import testing
from gflow.layers.remat import recompute_scope
from gflow.layers.shared_trace import shared_trace_scope
from gflow.layers.variable_keys import model_variables
from gflow.noise import Noise
from gflow.train.resume_config import ConfigChanged, compare
from gflow.train.trainer import build_model
from gflow.train.validate import ConfigError, validate
from gflow_denseflow.model import glow_like_module
from tests.test_denseflow import tiny_config

UNIT = re.compile(r"(.*\.units\.\d+)\.flow_layers\.(\d+)\.(.*)")


def _module(dtype="float32"):
  network = functools.partial(nets.GlowCNN, width=8, dtype=dtype)
  return glow_like_module(network, trace_key=f"test_stacked:{dtype}")


def _x(shape, seed, dtype=tf.float32):
  return tf.random.stateless_normal(shape, [seed, 0], dtype=dtype)


def test_stacked_modules_pass_the_flow_layer_contract():
  # (random 1x1 kernels are not rotations: float32 round trips lose ~1e-4 through three)
  for dtype, tol in [(tf.float64, 1e-9), (tf.float32, 1e-3)]:
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype.name)  # every layer of the modules in this dtype
    try:
      layer = gl.StackedFlow(functools.partial(_module, dtype.name), 3)
      layer.build((None, 4, 4, 4))
    finally:
      keras.config.set_dtype_policy(policy)
    examples.randomize(layer, scale=0.3, seed=2)
    x = _x((2, 4, 4, 4), seed=6, dtype=dtype)
    testing.check_flow_layer(layer, x, 3, rtol=tol, atol=tol)
  testing.check_log_det_against_jacobian(layer.bijector(), x, 3)


def test_each_module_starts_from_its_own_draw_and_nothing_is_left_deferred():
  from keras.src.backend.common import global_state
  layer = gl.StackedFlow(_module, 3)
  layer.build((None, 4, 4, 4))
  keys = model_variables(layer)
  kernel = keys["flow_layers.1.kernel"].numpy()  # the invertible 1x1 convolutions
  assert kernel.shape == (3, 4, 4)
  assert min(np.abs(kernel[i] - kernel[j]).max() for i in range(3) for j in range(i)) > 1e-2
  for k in kernel:  # each a rotation, as an unstacked module's
    np.testing.assert_allclose(k @ k.T, np.eye(4), atol=1e-5)
  assert all(v.shape[0] == 3 for v in layer.variables)
  assert len(layer.variables) == len(layer.template.variables)
  assert not (global_state.get_global_attribute("uninitialized_variables") or [])
  # the stacked variables carry the template's settings
  flag = keys["flow_layers.0.initialized"]
  assert flag.dtype == "bool" and not flag.trainable
  assert flag.aggregation == "only_first_replica"


def test_bad_modules_are_refused_by_name():
  with pytest.raises(ValueError, match="count >= 1"):
    gl.StackedFlow(_module, 0)
  with pytest.raises(ValueError, match="keep the shape"):
    gl.StackedFlow(lambda: gl.SqueezeLayer(), 2).build((None, 4, 4, 4))
  widths = iter([8, 16])
  odd = lambda: glow_like_module(functools.partial(nets.GlowCNN, width=next(widths)))  # noqa
  with pytest.raises(ValueError, match="different structures"):
    gl.StackedFlow(odd, 2).build((None, 4, 4, 4))


@pytest.fixture(scope="module")
def pair():
  """The tiny DenseFlow unstacked and stacked (units of 3 and 2 modules), with the same
  weights, initialised from one batch."""
  def make(stack):
    c = tiny_config()
    c.model.units, c.model.modules, c.model.stack_modules = (2, 1), (3, 2), stack
    return build_model(c, (8, 8, 1))
  plain, stacked = make(False), make(True)
  x = tf.cast(tf.random.stateless_uniform([16, 8, 8, 1], [1, 2], 0, 256, tf.int32), tf.float32)
  start = _stacked_values(model_variables(plain.layer))
  _assign(stacked, start)
  plain.initialize(x + 0.5)
  stacked.initialize(x + 0.5)
  return plain, stacked, x


def _stacked_values(keyed):
  """{stacked key: value} of an unstacked model's {key: variable or tensor}."""
  groups, out = {}, {}
  for key, v in keyed.items():
    m = UNIT.match(key)
    if m:
      groups.setdefault(f"{m[1]}.{m[3]}", {})[int(m[2])] = tf.convert_to_tensor(v)
    else:
      out[key] = tf.convert_to_tensor(v)
  out.update({k: tf.stack([by[i] for i in range(len(by))]) for k, by in groups.items()})
  return out


def _assign(model, values):
  keyed = model_variables(model.layer)
  assert set(keyed) == set(values), set(keyed) ^ set(values)
  for key, v in keyed.items():
    v.assign(values[key])


def _step(model, x, shared, remat):
  keyed = model_variables(model.layer)
  trainable = {k: v for k, v in keyed.items() if v.trainable}

  @tf.function
  def fn(x, seed):
    with tf.GradientTape() as tape, shared_trace_scope(shared), recompute_scope(remat):
      loss = tf.reduce_mean(model.bits_per_dim(x, seed=Noise(seed), training=True))
    return loss, dict(zip(trainable, tape.gradient(loss, list(trainable.values()))))
  loss, grads = fn(x, tf.constant([3, 4]))
  stats = {k: v.numpy() for k, v in keyed.items() if "moving_" in k}
  return loss.numpy(), grads, stats


def test_the_stacked_model_initialises_like_the_unstacked_one(pair):
  plain, stacked, _ = pair
  values = _stacked_values(model_variables(plain.layer))
  for key, v in model_variables(stacked.layer).items():
    np.testing.assert_array_equal(v.numpy(), values[key].numpy(), err_msg=key)
  moved = values["flow.flow_layers.1.flow_layers.0.units.0.flow_layers.0.shift"].numpy()
  assert np.abs(moved[0]).min() > 1e-3  # ActNorm's data-dependent init ran (the later
  # modules see normalised data: their shifts stay near 0, equal to the unstacked ones)
  assert gl.is_initialized(stacked.layer)
  assert len(stacked.layer.variables) < 0.7 * len(plain.layer.variables)


@pytest.mark.parametrize("shared,remat", [(False, False), (True, False), (True, True),
                                          (False, True)])
def test_loss_gradients_and_statistics_equal_the_unstacked_model(pair, shared, remat):
  plain, stacked, x = pair
  start = _stacked_values(model_variables(plain.layer))
  _assign(stacked, start)
  loss0, grads0, stats0 = _step(plain, x, shared, remat)
  loss1, grads1, stats1 = _step(stacked, x, shared, remat)
  grads0, stats0 = _stacked_values(grads0), _stacked_values(stats0)
  assert max(float(tf.reduce_max(tf.abs(g))) for g in grads0.values()) > 1e-2
  assert max(np.abs(stats0[k] - start[k].numpy()).max() for k in stats0) > 1e-3  # moved
  np.testing.assert_allclose(loss1, loss0, rtol=1e-6)
  assert set(grads1) == set(grads0)
  for key, g in grads1.items():
    ref = grads0[key].numpy()
    np.testing.assert_allclose(g.numpy(), ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max() + 1e-9,
                               err_msg=key)
  for key, s in stats1.items():  # each module's statistics, updated once
    np.testing.assert_allclose(s, stats0[key].numpy(), rtol=1e-6, atol=1e-7, err_msg=key)
  _assign(plain, {k: v for k, v in zip(model_variables(plain.layer),
                                       _unstack(plain, start))})


def _unstack(plain, stacked_values):
  """The unstacked model's values, in its key order, from {stacked key: value}."""
  out = []
  for key in model_variables(plain.layer):
    m = UNIT.match(key)
    out.append(stacked_values[f"{m[1]}.{m[3]}"][int(m[2])] if m else stacked_values[key])
  return out


def test_samples_equal_the_unstacked_models(pair):
  plain, stacked, _ = pair
  _assign(stacked, _stacked_values(model_variables(plain.layer)))
  for shared in (False, True):
    samples = []
    for model in (plain, stacked):
      with shared_trace_scope(shared):
        samples.append(tf.function(lambda m=model: m.sample(4, seed=Noise(
            tf.constant([5, 6]))))().numpy())
    assert samples[0].std() > 1
    np.testing.assert_allclose(samples[1], samples[0], rtol=1e-5, atol=1e-4)


def test_only_unstackable_configs_are_refused():
  c = tiny_config()
  c.parts.split = "across_blocks"
  with pytest.raises(ConfigError, match="stack_modules=False"):
    validate(c)
  c.model.stack_modules = False
  validate(c)
  c = tiny_config()
  c.model.sharing = "naive"  # modules sharing networks are simply not stacked
  model = build_model(c, (8, 8, 1))
  assert not [l for l in model.layer._flatten_layers() if isinstance(l, gl.StackedFlow)]


def test_a_run_saved_before_stacking_resumes_unstacked():
  c = tiny_config()
  saved = json_of(c)
  del saved["model"]["stack_modules"]
  with pytest.raises(ConfigChanged, match="model.stack_modules: false → true"):
    compare(saved, c, "runs/old")
  c.model.stack_modules = False
  assert compare(saved, c, "runs/old") == []


def json_of(config):
  import json
  return json.loads(config.to_json_best_effort(sort_keys=True))


def test_replica_walks_see_the_stacked_modules():
  """The trainer's walks reach inside stacked units: synchronized BatchNorm there turns
  XLA and shared traces off under several replicas, and the statistics of virtual-batch
  BatchNorm there are the stacked variables that replicas average."""
  from gflow.nets.batch_norm import replica_local_statistics
  from gflow.train.trainer import _syncs_replicas
  c = tiny_config()
  assert c.model.virtual_batch_size == 0  # synchronized
  assert _syncs_replicas(build_model(c, (8, 8, 1)).layer)
  c.model.virtual_batch_size = 4
  model = build_model(c, (8, 8, 1))
  assert not _syncs_replicas(model.layer)
  stats = replica_local_statistics(model.layer)
  stacked = [v for l in model.layer._flatten_layers() if isinstance(l, gl.StackedFlow)
             for v in l.variables if "moving_" in v.name]
  assert stacked and {id(v) for v in stacked} <= {id(v) for v in stats}
  assert len(stats) == len({id(v) for v in stats})


def test_keras_sees_only_the_stacked_variables():
  layer = gl.StackedFlow(_module, 2)
  layer.build((None, 4, 4, 4))
  assert {id(v) for v in layer.variables} == {id(v) for v in model_variables(layer).values()}
  assert not layer._layers  # the template is not a tracked sub-layer
  assert isinstance(layer.template, keras.layers.Layer)
