"""XLA:CPU's code generation as gflow's binaries set it (stdlib only).

XLA:CPU emits its loop fusions with its MLIR "fusion emitters" by default. For
DenseFlow-74-10's training step compiled per module (`train.jit_scope="modules"`,
batch 8, remat) XLA's earlier emitters gave a 0.23–0.3 GiB lower peak resident set, a
4–7 % faster step and 5 % less compilation, with the same losses to the last digit, in
runs over two sessions; Glow's whole compiled step ran as fast, within the machine's
noise (`benchmarks/README.md`, sessions 15 and 16). So gflow's console scripts append

    --xla_cpu_use_fusion_emitters=false

to XLA_FLAGS as they start. XLA reads XLA_FLAGS once, at the process's first XLA
compilation (not when TensorFlow loads), so `set_xla_cpu_defaults()` works until
then. A flag already in XLA_FLAGS is the user's and wins. XLA aborts the process on a
flag it does not know, so the defaults are set only under the TensorFlow releases
they were measured with (`MEASURED_WITH`). Importing gflow as a library changes
nothing; a script of one's own calls `set_xla_cpu_defaults()` for the same code.
"""

import importlib.metadata
import os
import shlex

__all__ = ["DEFAULTS", "MEASURED_WITH", "set_xla_cpu_defaults"]

DEFAULTS = ("--xla_cpu_use_fusion_emitters=false",)
MEASURED_WITH = ("2.21.",)  # TensorFlow release prefixes whose XLA knows DEFAULTS' flags


def _tensorflow_version():
  for package in ("tensorflow", "tensorflow-cpu"):
    try:
      return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      continue
  return None


def _name(flag):
  return flag.split("=", 1)[0]


def set_xla_cpu_defaults(environ=None, tensorflow_version=None):
  """Appends the DEFAULTS the user's XLA_FLAGS does not set to `environ` (default
  os.environ); returns the flags added. Nothing is added under a TensorFlow release
  not in MEASURED_WITH (or none installed): its XLA may not know them. Call it before
  the process's first XLA compilation; later it has no effect."""
  environ = os.environ if environ is None else environ
  version = tensorflow_version or _tensorflow_version()
  if version is None or not version.startswith(MEASURED_WITH):
    return []
  current = environ.get("XLA_FLAGS", "")
  given = {_name(flag) for flag in shlex.split(current)}
  added = [flag for flag in DEFAULTS if _name(flag) not in given]
  if added:
    environ["XLA_FLAGS"] = " ".join(([current] if current.strip() else []) + added)
  return added
