"""Whether the code being traced now will be compiled by XLA (stdlib and TensorFlow only)."""

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

__all__ = ["in_xla_cluster"]


def in_xla_cluster():
  """True while tracing inside a function that XLA compiles as a whole
  (`tf.function(jit_compile=True)`, or one nested in it)."""
  return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
