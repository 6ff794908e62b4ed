"""train.graph_optimizations: Grappler's passes for the functions called within, only."""

import pytest
import tensorflow as tf
from tensorflow.python.eager import context

from gflow.train.graph_options import graph_optimizations
from gflow.train.validate import ConfigError, validate


def _optimized_op_types(level):
  """The operation types of a fresh function's graph after Grappler, called at `level`
  (None: outside `graph_optimizations`)."""
  @tf.function
  def fn(x):  # a product of constants, which constant folding replaces by its value
    return x + tf.constant(2.0) * tf.sqrt(tf.constant(3.0))
  ctx = context.context()
  ctx.enable_run_metadata()
  try:
    if level is None:
      fn(tf.constant(1.0))
    else:
      with graph_optimizations(level):
        fn(tf.constant(1.0))
    metadata = ctx.export_run_metadata()
  finally:
    ctx.disable_run_metadata()
  graphs = [g.post_optimization_graph for g in metadata.function_graphs]
  return {n.op for g in graphs for n in g.node}


def test_light_turns_constant_folding_off_for_the_functions_called_within_only():
  assert "Sqrt" not in _optimized_op_types("default")  # folded
  assert "Sqrt" in _optimized_op_types("light")
  assert "Sqrt" not in _optimized_op_types(None)  # the process keeps its own settings


def test_the_previous_call_options_come_back():
  ctx = context.context()
  before = ctx.function_call_options
  with pytest.raises(RuntimeError):
    with graph_optimizations("light"):
      assert ctx.function_call_options is not before
      raise RuntimeError("inside")
  assert ctx.function_call_options is before


def test_an_unknown_level_is_refused_with_the_choices():
  with pytest.raises(ValueError, match="default.*light"):
    with graph_optimizations("fast"):
      pass
  import ml_collections
  config = ml_collections.ConfigDict({"train": {"graph_optimizations": "lite"}})
  with pytest.raises(ConfigError, match="light"):
    validate(config)
