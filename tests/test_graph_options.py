"""train.step_graph: Grappler's light passes for the step's own graph, every pass for the
functions it calls."""

import pytest
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow.python.eager import context

from gflow.train.graph_options import (LightStep, light_call_options, light_graph_options,
                                       resolve)


def _folds(x):
  """x plus a product of constants, which constant folding replaces by its value."""
  return x + tf.constant(2.0) * tf.sqrt(tf.constant(3.0))


def _optimized_graphs(call):
  """{function name prefix: op types after Grappler} of the functions `call()` runs."""
  ctx = context.context()
  ctx.enable_run_metadata()
  try:
    call()
    metadata = ctx.export_run_metadata()
  finally:
    ctx.disable_run_metadata()
  return [{n.op for n in g.post_optimization_graph.node} for g in metadata.function_graphs]


def _step_and_inner():
  inner = tf.function(_folds, experimental_attributes={"_noinline": True})

  @tf.function
  def step(x):
    return inner(_folds(x))
  return step


def _sqrt_count(graphs):
  return sum("Sqrt" in g for g in graphs)


def test_light_options_leave_constants_unfolded_for_the_functions_called_within_only():
  fn = tf.function(_folds)
  with light_graph_options():
    light = _optimized_graphs(lambda: fn(tf.constant(1.0)))
  assert _sqrt_count(light) == 1
  fresh = tf.function(_folds)
  assert _sqrt_count(_optimized_graphs(lambda: fresh(tf.constant(1.0)))) == 0  # folded


def _calls_fold_constants(step, x):
  """Per function call in `step`'s traced graph: whether its options fold constants
  (the `config_proto` a call carries is what Grappler optimises the callee with)."""
  folds = []
  for op in step.get_concrete_function(x).graph.get_operations():
    if op.type in ("PartitionedCall", "StatefulPartitionedCall"):
      config = config_pb2.ConfigProto()
      config.ParseFromString(op.get_attr("config_proto"))
      folds.append(config.graph_options.rewrite_options.constant_folding
                   != rewriter_config_pb2.RewriterConfig.OFF)
  return folds


def test_light_step_keeps_every_pass_for_the_functions_the_step_calls():
  x = tf.constant(1.0)
  traced = _step_and_inner()
  step = LightStep(traced)
  graphs = _optimized_graphs(lambda: step(x))
  assert _sqrt_count(graphs) == 1  # the step's own graph: not folded
  assert _calls_fold_constants(traced, x) == [True]  # the function it calls: folded
  # negative control: traced within the options, the called function loses them too
  traced_within = _step_and_inner()
  with light_graph_options():
    traced_within(x)
  assert _calls_fold_constants(traced_within, x) == [False]


def test_light_options_run_one_round_without_the_tfg_pipelines():
  light = _rewrite(light_call_options().config_proto_serialized)
  assert light.disable_tfg_optimizer
  assert light.meta_optimizer_iterations == rewriter_config_pb2.RewriterConfig.ONE
  assert light.constant_folding == rewriter_config_pb2.RewriterConfig.OFF
  assert light.remapping != rewriter_config_pb2.RewriterConfig.OFF  # fused kernels stay
  # the process's own options: untouched
  full = _rewrite(context.context().function_call_options.config_proto_serialized)
  assert not full.disable_tfg_optimizer
  assert full.meta_optimizer_iterations != rewriter_config_pb2.RewriterConfig.ONE


def _rewrite(serialized):
  config = config_pb2.ConfigProto()
  config.ParseFromString(serialized)
  return config.graph_options.rewrite_options


def test_light_step_returns_what_the_step_returns():
  step = _step_and_inner()
  light = LightStep(_step_and_inner())
  for x in (1.0, -2.5):
    assert float(light(tf.constant(x))) == pytest.approx(float(step(tf.constant(x))))


def test_auto_is_light_when_the_modules_run_in_shared_traces():
  assert resolve("auto", True) == "light"
  assert resolve("auto", False) == "full"
  assert resolve("full", True) == "full"
  assert resolve("light", False) == "light"
  with pytest.raises(ValueError, match="train.step_graph"):
    resolve("lite", True)


def test_the_previous_call_options_come_back():
  ctx = context.context()
  before = ctx.function_call_options
  with pytest.raises(RuntimeError):
    with light_graph_options():
      assert ctx.function_call_options is not before
      raise RuntimeError("inside")
  assert ctx.function_call_options is before
