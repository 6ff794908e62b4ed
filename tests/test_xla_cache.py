"""XLA's persistent compilation cache: set before TensorFlow reads its flags, read back
by a second process (gflow.xla_cache, the binaries' --xla_cache)."""

import contextlib
import os
import subprocess
import sys
import textwrap

import pytest

from gflow import _console
from gflow import xla_cache


@pytest.mark.parametrize("argv,expected", [
    (["gflow-train", "--workdir=runs/a"], ("runs/a/xla_cache", False)),
    (["gflow-train", "--workdir", "runs/a", "--xla_cache=/c"], ("/c", True)),
    (["gflow-train", "--xla_cache", "/c", "--workdir=runs/a"], ("/c", True)),
    (["gflow-train", "--workdir=runs/a", "--xla_cache=none"], None),
    (["gflow-list_plugins"], None),
])
def test_the_cache_directory_comes_from_the_command_line(argv, expected):
  assert _console.xla_cache_from_flags(argv) == expected


def test_a_directory_in_tf_xla_flags_wins_and_other_flags_are_kept(monkeypatch, tmp_path):
  monkeypatch.setattr(xla_cache, "runtime_started", lambda: False)  # other tests ran ops
  monkeypatch.setenv("TF_XLA_FLAGS", f"--tf_xla_min_cluster_size=4 {xla_cache.FLAG}=/given")
  assert xla_cache.use_compilation_cache(str(tmp_path)) == "/given"
  assert os.environ["TF_XLA_FLAGS"].endswith("=/given")
  monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_min_cluster_size=4")
  path = tmp_path / "a" / "b"
  assert xla_cache.use_compilation_cache(str(path)) == str(path) and path.is_dir()
  assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_min_cluster_size=4 {xla_cache.FLAG}={path}"
  assert xla_cache.compilation_cache() == str(path)


_PROGRAM = textwrap.dedent("""
    import os, sys
    import tensorflow as tf
    from gflow import xla_cache
    if sys.argv[2] == "late":
      tf.ones([1]) + 1  # TensorFlow has read its XLA flags
    print("set:", xla_cache.use_compilation_cache(sys.argv[1]))
    f = tf.function(lambda x: tf.reduce_sum(tf.nn.relu(x) * 3.0), jit_compile=True)
    print("value:", float(f(tf.range(4.0))))
""")


def _run(directory, when="early", env=None):
  proc = subprocess.run(
      [sys.executable, "-c", _PROGRAM, str(directory), when], capture_output=True, text=True,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0",
               TF_CPP_VMODULE="device_executable_persistor=1", **(env or {})), timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def test_a_second_process_loads_what_the_first_compiled(tmp_path):
  env = {"TF_XLA_FLAGS": ""}
  first = _run(tmp_path, env=env)
  assert "value: 18.0" in first.stdout and f"set: {tmp_path}" in first.stdout
  files = sorted(os.listdir(tmp_path))
  assert len(files) == 1 and files[0].startswith("xla_compile_cache"), files
  assert "Loading cached entry" not in first.stderr
  second = _run(tmp_path, env=env)
  assert "value: 18.0" in second.stdout and "Loading cached entry" in second.stderr
  assert sorted(os.listdir(tmp_path)) == files


def test_too_late_is_refused_rather_than_silently_ignored(tmp_path):
  proc = _run(tmp_path / "late", "late", env={"TF_XLA_FLAGS": ""})
  assert "set: None" in proc.stdout and not (tmp_path / "late").exists()


_LOADED = ("E0000 00:00:1 2 cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. Target machine "
           "feature +prefer-no-gather is not  supported on the host machine. …\n")
_MISSING_ISA = _LOADED.replace("+prefer-no-gather", "+avx512f")


@pytest.mark.parametrize("raises", [False, True])
def test_the_first_step_hides_only_the_caches_harmless_lines(monkeypatch, capfd, raises):
  monkeypatch.setattr(_console, "is_console_script", lambda: True)
  monkeypatch.setattr(_console, "verbose", lambda: False)
  with pytest.raises(RuntimeError) if raises else contextlib.nullcontext():
    with _console.harmless_lines_hidden():
      for line in (_LOADED, "E0000 text_format.cc:378] Error parsing text-format "
                   "tensorflow.XlaSerializedCacheEntry: 2:1: Expected identifier\n",
                   _MISSING_ISA, "a warning of the step\n"):
        os.write(2, line.encode())
      if raises:
        raise RuntimeError("step failed")
  err = capfd.readouterr().err
  assert _MISSING_ISA in err and "a warning of the step" in err
  assert ("+prefer-no-gather" in err) == raises and ("text-format" in err) == raises
