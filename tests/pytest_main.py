"""The main of every Bazel py_test: runs pytest on the test file given as argument.

    bazel test //tests:test_flow   # runs: pytest_main.py tests/test_flow.py

A plain `python tests/test_x.py` would define the tests and run none, so each
py_test in the generated BUILD files (tools/gen_build.py) uses this file as its
main. pytest reads its settings (markers, `-m 'not slow'`) from pyproject.toml.
"""

import os
import sys

import pytest

# pytest's exit code when the selection (`-m 'not slow'`) left nothing to run.
NO_TESTS_COLLECTED = 5


def main(argv):
  args = ["-p", "no:cacheprovider", *argv]
  # Bazel gives each test a folder for its outputs; keep pytest's temp dirs there.
  if "TEST_TMPDIR" in os.environ:
    args = ["--basetemp", os.path.join(os.environ["TEST_TMPDIR"], "pytest"), *args]
  code = pytest.main(args)
  if code == NO_TESTS_COLLECTED:
    print("pytest_main: every test of this file was deselected (e.g. marked slow)")
    return 0
  return int(code)


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
