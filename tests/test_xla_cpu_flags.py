"""gflow.xla_cpu_flags: XLA:CPU's code-generation defaults for gflow's binaries."""

import os
import subprocess
import sys

from gflow import xla_cpu_flags
from gflow.xla_cpu_flags import DEFAULTS, set_xla_cpu_defaults
from tests.conftest import REPO

MEASURED = xla_cpu_flags.MEASURED_WITH[0] + "0"


def test_the_defaults_are_appended_to_the_users_flags():
  env = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
  assert set_xla_cpu_defaults(env, MEASURED) == list(DEFAULTS)
  assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x " + " ".join(DEFAULTS)
  assert set_xla_cpu_defaults(env, MEASURED) == []  # idempotent
  assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x " + " ".join(DEFAULTS)
  empty = {}
  set_xla_cpu_defaults(empty, MEASURED)
  assert empty["XLA_FLAGS"] == " ".join(DEFAULTS)


def test_a_flag_the_user_set_wins():
  name = DEFAULTS[0].split("=")[0]
  env = {"XLA_FLAGS": f"{name}=true"}
  assert set_xla_cpu_defaults(env, MEASURED) == []
  assert env["XLA_FLAGS"] == f"{name}=true"


def test_nothing_is_set_under_a_tensorflow_release_not_measured():
  env = {}
  assert set_xla_cpu_defaults(env, "9.99.0") == [] and "XLA_FLAGS" not in env


def test_this_tensorflows_xla_knows_the_flags():
  """XLA aborts the process on a flag it does not know (the negative control)."""
  script = ("import tensorflow as tf\n"
            "f = tf.function(lambda x: tf.nn.relu(x) * 2.0 + 1.0, jit_compile=True)\n"
            "print(float(f(tf.constant(3.0))))\n")
  env = dict(os.environ)
  set_xla_cpu_defaults(env)
  assert all(flag in env.get("XLA_FLAGS", "") for flag in DEFAULTS)
  ran = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                       text=True, timeout=300)
  assert ran.returncode == 0 and ran.stdout.strip() == "7.0", ran.stderr[-2000:]
  env["XLA_FLAGS"] += " --xla_cpu_no_such_flag_in_gflow=true"
  unknown = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, timeout=300)
  assert unknown.returncode != 0 and "xla_cpu_no_such_flag_in_gflow" in unknown.stderr


def test_the_console_scripts_set_them_and_a_library_import_does_not():
  probe = "import os, gflow; print(os.environ.get('XLA_FLAGS', ''))"
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  library = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                           text=True, cwd=REPO, check=True)
  assert library.stdout.strip() == ""
  # a console script (gflow-*) has them set in gflow's import, before TensorFlow loads
  script = ("import sys; sys.argv[0] = 'gflow-probe'\n"
            "import os, gflow; print(os.environ.get('XLA_FLAGS', ''))")
  console = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, cwd=REPO, check=True)
  assert console.stdout.strip() == " ".join(DEFAULTS), console.stdout
