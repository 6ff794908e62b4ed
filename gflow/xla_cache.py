"""XLA's compiled programs kept on disk, so a run that compiles them again loads them.

XLA compiles a step the first time it runs; on a CPU a deep flow's step takes minutes
(DenseFlow-74-10 whole: ~15). TensorFlow can keep every program it compiles in a
directory, one file per program, named by a fingerprint of the program (its HLO) and
of the call's signature; a later process that compiles the same program on the same
kind of machine reads the file instead of compiling (`benchmarks/README.md` has the
figures). Running the same command again (the same config in a new workdir, with
`--xla_cache` naming one directory) then starts without the compilation. The key
holds the name TensorFlow gave the traced function, which carries a process-wide
count of the functions traced before it: a resumed run, which traces other functions
first, misses and compiles again.

TensorFlow reads its XLA flags once, when it first looks for its devices or runs an
operation: `use_compilation_cache(directory)` must come before that. gflow's binaries
set it as they start, before TensorFlow loads, from their `--xla_cache` flag (by
default `<workdir>/xla_cache`; `none` turns it off); a
`--tf_xla_persistent_cache_directory` already in TF_XLA_FLAGS wins. The files hold
machine code for the CPU that compiled them: share a directory between machines of one
kind only. Loading one, XLA:CPU may log an error that a tuning feature of the compiling
CPU (e.g. `+prefer-no-gather`) "is not supported on the host machine": tuning features
are not instruction sets, and on the machine that compiled the program the message is
harmless.
"""

import os
import shlex

__all__ = ["use_compilation_cache", "compilation_cache", "FLAG"]

FLAG = "--tf_xla_persistent_cache_directory"


def compilation_cache():
  """The directory TF_XLA_FLAGS gives XLA's persistent cache, or None."""
  found = None
  for arg in shlex.split(os.environ.get("TF_XLA_FLAGS", "")):
    if arg.startswith(FLAG + "="):
      found = arg.split("=", 1)[1] or None
  return found


def runtime_started():
  """True once TensorFlow's runtime has started (an operation ran): its XLA flags have
  been read, and later changes to TF_XLA_FLAGS are not seen."""
  import sys
  if "tensorflow" not in sys.modules:
    return False
  from tensorflow.python.eager import context
  return bool(context.context()._initialized)


def use_compilation_cache(directory, create=True):
  """Keeps XLA's compiled programs in `directory` in this process (made now if
  `create`; otherwise TensorFlow makes it, if its parent exists, when it first writes).
  Returns the directory in use, or None when it cannot be set: `directory` is empty, or
  TensorFlow has run an operation (call this before TensorFlow looks for its devices:
  that reads the flags too, unseen here). A directory already given in TF_XLA_FLAGS is
  kept (and returned)."""
  current = compilation_cache()
  if current is not None:
    return current
  if not directory or runtime_started():
    return None
  directory = os.path.abspath(os.path.expanduser(directory))
  if create:
    os.makedirs(directory, exist_ok=True)
  flags = os.environ.get("TF_XLA_FLAGS", "")
  os.environ["TF_XLA_FLAGS"] = (flags + " " if flags else "") + shlex.join(
      [f"{FLAG}={directory}"])
  return directory
