"""Quiet start-up for the console scripts (stdlib only: it runs before TensorFlow loads).

TensorFlow's C++ runtime prints a dozen lines when it loads and finds its devices
(oneDNN, absent CUDA drivers on a CPU machine, cuInit). A user of `gflow-train`
sees them as errors that are not. When the process is one of gflow's console
scripts (`gflow-*`, or `python -m gflow.cli.*`) and not asked to be verbose
(`--verbosity=0` or higher, or GFLOW_DEBUG=1), TensorFlow is loaded with the
process's stderr set aside; the lines are shown if loading fails. Before that, a
console script's `--xla_cache` or `--workdir` sets where XLA keeps its compiled
programs (`gflow.xla_cache`): TensorFlow reads that when it first finds its devices.
XLA:CPU's code-generation defaults are added to XLA_FLAGS too (`gflow.xla_cpu_flags`).
Importing gflow as a library changes nothing.
"""

import contextlib
import os
import re
import sys
import tempfile

DEBUG_ENV = "GFLOW_DEBUG"


def is_console_script(argv=None, orig_argv=None):
  argv = sys.argv if argv is None else argv
  orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
  if argv and os.path.basename(argv[0]).startswith("gflow-"):
    return True
  for i, arg in enumerate(orig_argv[:-1]):
    if arg == "-m":
      return orig_argv[i + 1].startswith("gflow.cli.")
  return False


def verbose(argv=None):
  """GFLOW_DEBUG is set, or `--verbosity`/`-v` >= 0 (absl's INFO) is among the flags."""
  if os.environ.get(DEBUG_ENV):
    return True
  for arg in (sys.argv if argv is None else argv)[1:]:
    for flag in ("--verbosity=", "-v=", "--v="):
      if arg.startswith(flag):
        try:
          return int(arg[len(flag):]) >= 0
        except ValueError:
          return False
  return False


@contextlib.contextmanager
def _stderr_set_aside(shown):
  """Runs the block with stderr (fd 2) going to a temporary file, then writes back the
  lines `shown(line)` accepts, or every line if the block raised."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    failed = True
    try:
      yield
      failed = False
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      lines = captured.read().decode(errors="replace").splitlines(keepends=True)
      sys.stderr.write("".join(l for l in lines if failed or shown(l)))
      sys.stderr.flush()


def load_tensorflow_quietly():
  """Imports TensorFlow and finds its devices with stderr (fd 2) set aside."""
  if "tensorflow" in sys.modules:
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  with _stderr_set_aside(lambda line: False):
    import tensorflow as tf
    tf.config.list_physical_devices()


# Lines TensorFlow logs as errors that are not, when it loads a program from XLA's
# persistent cache (gflow.xla_cache): it first tries the file as text, and it compares
# the compiling CPU's tuning features (not instruction sets) with the host's.
HARMLESS = re.compile(
    r"Error parsing text-format tensorflow\.XlaSerializedCacheEntry"
    r"|Loading XLA:CPU AOT result\. Target machine feature \+prefer-[\w-]+ is not +supported")


@contextlib.contextmanager
def harmless_lines_hidden():
  """In a quiet console script (not verbose), the block's stderr (fd 2) is set aside
  and written back without the lines HARMLESS matches; everything, if the block
  raises. Elsewhere it changes nothing."""
  if not (is_console_script() and not verbose()):
    yield
    return
  with _stderr_set_aside(lambda line: not HARMLESS.search(line)):
    yield


def flag_value(name, argv=None):
  """The value of `--name=value` or `--name value` among the flags (the last given), or
  None: read before absl parses them, for what must be set before TensorFlow loads."""
  argv = (sys.argv if argv is None else argv)[1:]
  found = None
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      found = arg.split("=", 1)[1]
    elif arg == f"--{name}" and i + 1 < len(argv):
      found = argv[i + 1]
  return found


def xla_cache_for(given, workdir):
  """(directory, create) for XLA's persistent cache from a binary's `--xla_cache`
  (`none`: off) or else its `--workdir` (`<workdir>/xla_cache`, made by TensorFlow
  when it first writes there, once the run has made the workdir); None for neither."""
  if given == "none":
    return None
  if given:
    return given, True
  return (os.path.join(workdir, "xla_cache"), False) if workdir else None


def xla_cache_from_flags(argv=None):
  """`xla_cache_for` the command line's flags, before absl parses them."""
  return xla_cache_for(flag_value("xla_cache", argv), flag_value("workdir", argv))


def quiet_start():
  if is_console_script():
    from gflow.xla_cpu_flags import set_xla_cpu_defaults
    set_xla_cpu_defaults()
    cache = xla_cache_from_flags()
    if cache is not None:  # TensorFlow reads its XLA flags when it finds its devices
      from gflow.xla_cache import use_compilation_cache
      use_compilation_cache(*cache)
    if not verbose():
      load_tensorflow_quietly()
