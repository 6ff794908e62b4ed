"""gflow.malloc_arenas: glibc's arenas capped for gflow's binaries."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

# Eight threads allocate at once; glibc then reports each arena in malloc_stats() on stderr.
SCRIPT = """
import ctypes, importlib.util, sys, threading
spec = importlib.util.spec_from_file_location("m", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
print(m.cap_malloc_arenas(2) if sys.argv[2] == "cap" else None)
together = threading.Barrier(8)
def work():  # every thread allocates while all eight are alive
  blocks = [bytearray(4096) for _ in range(50)]
  together.wait()
  blocks += [bytearray(4096) for _ in range(50)]
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()
"""


def _arenas(mode, env=None):
  module = os.path.join(REPO, "gflow", "malloc_arenas.py")
  out = subprocess.run([sys.executable, "-c", SCRIPT, module, mode], capture_output=True,
                       text=True, env={**os.environ, **(env or {})}, check=True)
  return out.stdout.strip(), out.stderr.count("Arena ")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_the_cap_keeps_threads_to_that_many_arenas():
  capped, arenas = _arenas("cap")
  assert capped == "2" and arenas <= 2, arenas
  _, free = _arenas("none")  # negative control: glibc gives each thread an arena
  assert free > 4, free


def test_malloc_arena_max_in_the_environment_wins():
  assert _arenas("cap", {"MALLOC_ARENA_MAX": "3"})[0] == "None"


def test_the_binaries_cap_the_arenas_first():
  import gflow.cli.common as common
  assert common.cap_malloc_arenas.__module__ == "gflow.malloc_arenas"
  source = open(common.__file__).read()
  assert source.index("cap_malloc_arenas()") < source.index("from absl import app")
