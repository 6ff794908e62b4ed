"""Quiet start-up for the console scripts (stdlib only: it runs before TensorFlow loads).

TensorFlow's C++ runtime prints a dozen lines when it loads and finds its devices
(oneDNN, absent CUDA drivers on a CPU machine, cuInit). A user of `gflow-train`
sees them as errors that are not. When the process is one of gflow's console
scripts (`gflow-*`, or `python -m gflow.cli.*`) and not asked to be verbose
(`--verbosity=0` or higher, or GFLOW_DEBUG=1), TensorFlow is loaded with the
process's stderr set aside; the lines are shown if loading fails. Importing gflow
as a library changes nothing.
"""

import os
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


def load_tensorflow_quietly():
  """Imports TensorFlow and finds its devices with stderr (fd 2) set aside."""
  if "tensorflow" in sys.modules:
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow as tf
      tf.config.list_physical_devices()
    except BaseException:
      os.dup2(saved, 2)
      captured.seek(0)
      sys.stderr.write(captured.read().decode(errors="replace"))
      raise
    finally:
      os.dup2(saved, 2)
      os.close(saved)


def quiet_start():
  if is_console_script() and not verbose():
    load_tensorflow_quietly()
