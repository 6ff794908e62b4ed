"""Grappler passes for gflow's training step: `train.graph_optimizations`.

TensorFlow optimises a function's graph with Grappler when the function is first
called. A deep flow's training step is a large graph (DenseFlow-74-10: 22,103
operations, mostly variables' handles and reads, and calls of the shared module and
update functions), and six passes spend ~9 s of DenseFlow-74-10's start-up on it:
constant folding and the function, memory, arithmetic, dependency and loop
optimisers. With `"light"` they are off for the step's graph and the functions it
calls (layout optimisation, remapping into fused kernels and pruning stay): the
first step comes ~7 s sooner, and each step then takes ~5 % longer on this CPU
(`benchmarks/README.md`), so it suits short runs and quick starts; `"default"` keeps
TensorFlow's passes.

The options reach only the functions called within `graph_optimizations(level)`
(TensorFlow's per-thread function call options, whose config a function call
carries): the rest of the process keeps its own settings. A function is optimised
once, at its first call, under the options of that call.
"""

import contextlib

from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow.python.eager import context

__all__ = ["LEVELS", "graph_optimizations"]

LEVELS = ("default", "light")
_OFF = ("constant_folding", "function_optimization", "arithmetic_optimization",
        "dependency_optimization", "loop_optimization")


@contextlib.contextmanager
def graph_optimizations(level):
  """Functions called within are optimised at `level` ("default" or "light")."""
  if level not in LEVELS:
    raise ValueError(f"train.graph_optimizations must be one of {LEVELS}; got {level!r}.")
  if level == "default":
    yield
    return
  ctx = context.context()
  previous = ctx.function_call_options
  config = _config(previous.config_proto_serialized)
  ctx.function_call_options = context.FunctionCallOptions(
      executor_type=previous.executor_type, config_proto=config)
  try:
    yield
  finally:
    ctx.function_call_options = previous


def _config(serialized):
  from tensorflow.core.protobuf import config_pb2
  config = config_pb2.ConfigProto()
  config.ParseFromString(serialized)
  rewrite = config.graph_options.rewrite_options
  for name in _OFF:
    setattr(rewrite, name, rewriter_config_pb2.RewriterConfig.OFF)
  rewrite.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
  return config
