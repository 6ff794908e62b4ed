"""What every gflow console script shares: quiet TF logs and one-line user errors."""

import os
import sys

from gflow import _console
from gflow.malloc_arenas import cap_malloc_arenas

__all__ = ["run_app", "reject_extra_args", "define_xla_cache_flag", "check_xla_cache"]

DEBUG_ENV = _console.DEBUG_ENV


def reject_extra_args(argv):
  if len(argv) > 1:
    raise ValueError(f"unexpected arguments {argv[1:]}")


def define_xla_cache_flag():
  """The `--xla_cache` flag of a binary that takes a `--workdir` (read before TensorFlow
  loads, by `gflow._console`; see gflow.xla_cache)."""
  from absl import flags
  return flags.DEFINE_string(
      "xla_cache", "", "Directory keeping XLA's compiled programs across runs: the same "
      "command run again loads them instead of compiling (default <workdir>/xla_cache; "
      "'none': off). Share it only between machines of one kind (gflow.xla_cache).")


def check_xla_cache(value, workdir):
  """Warns when the parsed `--xla_cache`/`--workdir` ask for XLA's persistent cache and
  none is set: gflow sets it from the command line before TensorFlow loads
  (`gflow._console`), and a flag given another way (e.g. in a --flagfile) comes too late."""
  from gflow.xla_cache import compilation_cache
  if _console.xla_cache_for(value, workdir) is not None and compilation_cache() is None:
    print("warning: XLA's compiled programs are not kept across runs: give --xla_cache "
          "or --workdir on the command line, or set TF_XLA_FLAGS="
          "--tf_xla_persistent_cache_directory=<dir>.", file=sys.stderr)


def run_app(main):
  """absl's app.run; the errors gflow's checks raise for bad input are printed as
  one line (exit 2); any other exception, including a ValueError raised inside
  TensorFlow or another library, keeps its traceback. TensorFlow's start-up and INFO log
  lines are hidden unless `--verbosity=0` (or higher) or GFLOW_DEBUG=1 is given;
  GFLOW_DEBUG=1 also shows the traceback of user errors.
  """
  verbose = _console.verbose()
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
  cap_malloc_arenas()  # before TensorFlow starts its threads: see gflow.malloc_arenas
  from absl import app

  from gflow.data import DatasetUnavailableError
  from gflow.registry import PluginError
  from gflow.train.lock import WorkdirBusy
  from gflow.train.trainer import CheckpointWriteError
  errors = (PluginError, DatasetUnavailableError, FileNotFoundError, ValueError, TypeError,
            WorkdirBusy, CheckpointWriteError)

  def wrapped(argv):
    if not verbose:  # TensorFlow's INFO lines (checkpoint sharding, …)
      from absl import logging
      logging.set_verbosity(logging.WARNING)
    try:
      return main(argv)
    except errors as e:
      if os.environ.get(DEBUG_ENV) or raised_inside_a_library(e):
        raise
      print(f"error: {e}", file=sys.stderr)
      return 2
  _show_flags_in_help(main.__module__)
  app.run(wrapped, flags_parser=_parse_flags)


# Where an exception raised is a bug to report, not a message for the user.
LIBRARIES = ("tensorflow", "tensorflow_probability", "keras", "tf_keras", "numpy", "h5py",
             "google.protobuf", "tensorflow_datasets")


def raised_inside_a_library(error):
  """True if `error` was raised by TensorFlow, Keras, NumPy, … rather than by a check
  of gflow, a plugin or a config: such an error keeps its traceback."""
  tb = error.__traceback__
  if tb is None:
    return False
  while tb.tb_next is not None:
    tb = tb.tb_next
  module = tb.tb_frame.f_globals.get("__name__", "")
  return any(module == lib or module.startswith(lib + ".") for lib in LIBRARIES)


def _show_flags_in_help(module_name):
  """absl's --help/--helpshort list the key flags of the module named by sys.argv[0];
  a console script's argv[0] is its launcher, not the module defining the flags."""
  from absl import flags
  if module_name == sys.argv[0]:
    return
  for flag in flags.FLAGS.get_key_flags_for_module(module_name):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def _parse_flags(argv):
  """absl's flag parsing, with a bad `--config.<field>` override as one clear line."""
  from absl import flags
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:  # ml_collections: no such config field
    if os.environ.get(DEBUG_ENV):
      raise
    detail = str(e).strip("'\"").replace("\\n", " ").replace("\\'", "'").replace("\n", " ")
    overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    print(f"error: unknown config field {detail} (overrides given: {', '.join(overrides)})",
          file=sys.stderr)
    sys.exit(2)
  except flags.Error as e:
    print(f"error: {e}\nPass --helpshort to see the flags.", file=sys.stderr)
    sys.exit(2)
