"""Cap glibc's malloc arenas at the number of cores the process may use.

TensorFlow's CPU allocator takes its memory from malloc. glibc gives threads that
contend for the heap arenas of their own, up to 8 per core, and memory freed in an
arena stays with that arena, resident, for later allocations there. A training step
allocates and frees its activations and gradients from many threads, so the resident
set grows by what every arena keeps: on 2 cores, DenseFlow-74-10's peak at batch 8
was 0.28 GiB lower with 2 arenas than with glibc's 16, its steps as fast
(`benchmarks/README.md`). gflow's binaries call `cap_malloc_arenas()` first; a
`MALLOC_ARENA_MAX` in the environment (which glibc reads itself) wins.
"""

import ctypes
import os

__all__ = ["cap_malloc_arenas"]

_M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h


def cap_malloc_arenas(arenas=None):
  """Caps glibc's arenas at `arenas` (default: the cores this process may run on);
  returns the cap, or None when nothing was done (not glibc, or MALLOC_ARENA_MAX is
  set)."""
  if "MALLOC_ARENA_MAX" in os.environ:
    return None
  try:
    libc = ctypes.CDLL(None)
    libc.gnu_get_libc_version  # glibc only
  except (OSError, AttributeError):
    return None
  if arenas is None:
    arenas = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  arenas = max(1, int(arenas))
  return arenas if libc.mallopt(_M_ARENA_MAX, arenas) == 1 else None
