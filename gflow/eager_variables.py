"""Create many variables quickly in eager mode.

TensorFlow's eager runtime caches each operation's kernel under the operation's
attributes. The `VarHandleOp` that creates a variable carries the variable's scoped
name as its `debug_name` attribute, so every variable with a name of its own misses
that cache and builds a kernel anew: 0.4 ms per variable instead of 0.02 ms here. A
deep flow has thousands (DenseFlow-74-10: 3,645 weights, 6,846 optimizer slots), and
gflow-train spent seconds of its start-up on those misses.

Within `fast_variable_creation()`, variables created eagerly share one TensorFlow-level
name (`tf.Variable.name`), which eager TensorFlow uses for nothing but debugging. The
names that matter are untouched: Keras keeps each variable's own `name` and `path`, and
checkpoints key variables by their place in the object graph
(`gflow.train.checkpoint`). Variables created while tracing a graph keep their names.
"""

import contextlib

import tensorflow as tf

__all__ = ["fast_variable_creation", "SHARED_NAME"]

SHARED_NAME = "gflow_variable"


def _creator(next_creator, **kwargs):
  if not tf.executing_eagerly():
    return next_creator(**kwargs)
  kwargs["name"] = SHARED_NAME
  with tf.compat.v1.name_scope(None):  # the scope would make the name unique again
    return next_creator(**kwargs)


@contextlib.contextmanager
def fast_variable_creation():
  """Variables created eagerly within share one TensorFlow-level name (module doc)."""
  with tf.variable_creator_scope(_creator):
    yield
