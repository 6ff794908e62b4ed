"""Grappler's passes for the training step's own graph: `train.step_graph`.

TensorFlow optimises a function's graph with Grappler when the function is first
called, and the functions it calls each when they are first called, under the
options their call carries: the per-thread function call options in force when the
caller was traced. With shared traces (`train.shared_traces`) a deep flow's step graph
is glue: DenseFlow-74-10's is 22,103 operations, mostly its variables' handles and
reads and the calls of the shared module functions and of the chunked update
(`gflow.train.chunked_calls`), while the work is inside those functions. Grappler
spends ~16 s on that glue before the first step, ~8 s of it in six passes that find
little there: constant folding and the function, memory, arithmetic, dependency and
loop optimisers. Of the rest (6.8 s on a slower CPU), the MLIR TFG pipelines (shape
inference, conditional code motion) took 3.4 s and a second round of every pass 1.3
s, to change nothing.

`LightStep(step)` calls a `tf.function` with those six passes, the TFG pipelines and
the second round off for its own graph (layout optimisation, remapping into fused
kernels and pruning stay). It traces the step first, outside the options, so the
functions the step calls keep every pass of the process: only the glue is optimised
lightly. `train.step_graph`: "light", "full" (TensorFlow's passes everywhere) or
"auto" (light when the modules run in shared traces, full otherwise). The default is
"auto"; `benchmarks/README.md` has the figures (the first step ~8 s sooner, then 6–9 s
sooner again without the TFG pipelines and the second round; the steps the same).
"""

import contextlib

from tensorflow.core.protobuf import config_pb2
from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow.python.eager import context

__all__ = ["LEVELS", "LightStep", "light_call_options", "light_graph_options", "resolve"]

LEVELS = ("auto", "full", "light")
_OFF = ("constant_folding", "function_optimization", "arithmetic_optimization",
        "dependency_optimization", "loop_optimization")


def resolve(level, modules_shared):
  """"light" or "full" for `train.step_graph = level`; `modules_shared`: whether the
  step runs its modules in shared traces (on, not unrolled by XLA or by replicas that
  sync inside the forward pass)."""
  if level not in LEVELS:
    raise ValueError(f"train.step_graph must be one of {LEVELS}; got {level!r}.")
  if level == "auto":
    return "light" if modules_shared else "full"
  return level


def light_call_options(options=None):
  """`options` (default: this thread's function call options) without the six passes,
  the TFG pipelines and the second round (module doc)."""
  options = options or context.context().function_call_options
  config = config_pb2.ConfigProto()
  config.ParseFromString(options.config_proto_serialized)
  rewrite = config.graph_options.rewrite_options
  for name in _OFF:
    setattr(rewrite, name, rewriter_config_pb2.RewriterConfig.OFF)
  rewrite.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
  rewrite.disable_tfg_optimizer = True  # MLIR's shape inference and code motion: no gain
  rewrite.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
  return context.FunctionCallOptions(executor_type=options.executor_type,
                                     config_proto=config)


@contextlib.contextmanager
def light_graph_options():
  """Functions first called within (and traced within) are optimised without the
  six passes; the process's options come back on exit."""
  ctx = context.context()
  previous = ctx.function_call_options
  ctx.function_call_options = light_call_options(previous)
  try:
    yield
  finally:
    ctx.function_call_options = previous


class LightStep:
  """`step(*args)` with its own graph optimised lightly, the functions it calls fully.

  The first call traces `step` for its arguments outside the light options (so the
  calls inside carry the process's options), then every call runs within them: the
  step's graph is optimised once, at that first call."""

  def __init__(self, step):
    self._step = step
    self._traced = False

  def get_concrete_function(self, *args):
    """The step's trace for `args`, traced (outside the options) if it was not."""
    concrete = self._step.get_concrete_function(*args)
    self._traced = True
    return concrete

  def call_options(self):
    """The function call options its calls carry (for `gflow.train.instantiation`)."""
    return light_call_options()

  def __call__(self, *args):
    if not self._traced:
      self.get_concrete_function(*args)
    with light_graph_options():
      return self._step(*args)
