"""Have TensorFlow instantiate a traced function in the background, without running it.

At a function's first call TensorFlow instantiates it (placement, Grappler's passes,
partitioning, a kernel per operation) before running it: ~11 s for DenseFlow-74-10's
training step on 2 CPU cores, light passes and all. The trainer traces its step before
the data-dependent init (nothing in the trace depends on the init's values) and
`instantiating(...)` has a background thread call the step with a cancellation
manager that is already cancelled: TensorFlow instantiates the function, caches it
under the call's name and options, and stops before running anything; the real first
call finds it ready. Meanwhile the init runs in the caller's thread (TensorFlow's C++
instantiation does not hold Python's lock).

The cancelled call goes through TensorFlow's eager `execute` with its own manager
(not `CancellationManager.get_cancelable_function`, whose manager is a process global
that a function called from the caller's thread meanwhile would pick up).
"""

import contextlib
import itertools
import threading

import tensorflow as tf
from tensorflow.python.eager import cancellation
from tensorflow.python.eager import context
from tensorflow.python.eager import execute
from tensorflow.python.eager.polymorphic_function import function_type_utils

__all__ = ["instantiating"]


@contextlib.contextmanager
def instantiating(concrete, args, call_options=None):
  """Within it, `concrete` (a ConcreteFunction, for `args`) is being instantiated in a
  background thread as a call with `call_options` (default: this thread's function call
  options, which a real call from here would carry) would be; the exit waits for it."""
  options = call_options or context.context().function_call_options
  attrs = tuple(itertools.chain(*options.as_attrs().items()))
  bound = function_type_utils.canonicalize_function_inputs(args, {}, concrete.function_type)
  inputs = list(concrete.function_type.unpack_inputs(bound)) + list(concrete.captured_inputs)
  thread = threading.Thread(target=_instantiate, args=(concrete, inputs, attrs),
                            name="gflow-instantiate", daemon=True)
  thread.start()
  try:
    yield
  finally:
    thread.join()


def _instantiate(concrete, inputs, attrs):
  function = concrete._inference_function  # what a call without a tape runs
  manager = cancellation.CancellationManager()
  manager.start_cancel()
  try:
    execute.execute_with_cancellation(
        function.name.decode("utf-8"), len(function.function_type.flat_outputs), inputs,
        attrs, context.context(), manager)
  except tf.errors.CancelledError:
    pass  # instantiated, not run
  except Exception:  # pylint: disable=broad-except
    pass  # the real first call meets it again, and raises it in the caller's thread
