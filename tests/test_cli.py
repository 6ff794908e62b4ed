"""Every mode of every console script, run as a user runs it."""

import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from tests.conftest import CONFIG, TINY, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  proc = run_cli("train", f"--config={CONFIG}:digits", f"--workdir={workdir}", *TINY,
                 "--config.train.num_steps=10", "--config.train.ema_decay=0.9")
  return workdir, proc.stdout, proc.stderr


def test_train_writes_progress_checkpoints_summaries_samples_and_config(trained):
  workdir, out, _ = trained
  assert "step 10/10 | loss (bits/dim) " in out and "steps/s | ETA" in out
  line = [l for l in out.splitlines() if l.startswith("test bits/dim: ")]
  assert len(line) == 1 and 0 < float(line[0].split()[2]) < 20
  names = os.listdir(workdir)
  assert {"config.json", "run.json", "checkpoints", "tensorboard", "samples"} <= set(names)
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir / "tensorboard"))
  # on a CPU the configs' unset train.jit_compile leaves XLA off: nothing compiled or kept
  assert "XLA is off: train.jit_compile is unset and this run computes on CPUs" in out
  assert "samples/, tensorboard/, config.json." in out
  assert not (workdir / "xla_cache").exists()
  png = os.path.join(workdir, "samples", "step_0000010.png")
  assert Image.open(png).size[0] > 8


def test_the_terminal_shows_what_gflow_did_and_no_tensorflow_start_up_lines(trained):
  workdir, out, err = trained
  assert not re.search(r"^[IWE]0000|cuInit|oneDNN|absl::InitializeLog", err, re.M), err
  assert re.search(r"^First step \(data-dependent init, tracing\) took [\d.]+ s\.$", out, re.M)
  first = re.search(r"^step  5/10 \| .* \| ([\d.]+) steps/s \| ETA", out, re.M)
  assert first and float(first.group(1)) > 2, out  # compile time is not in steps/s
  assert f"Saved {workdir / 'checkpoints' / 'ckpt-10'}" in out.splitlines()
  assert re.search(r"^Done: steps 0→10 in 0:\d\d:\d\d; final test bits/dim [\d.]+, "
                   r"best [\d.]+ at step 10\.$", out, re.M), out
  best = json.loads((workdir / "checkpoints" / "best" / "best.json").read_text())
  assert best["figure"] == "bits/dim" and best["step"] == 10
  loud = run_cli("info", f"--config={CONFIG}:digits", "--verbosity=0")
  # --verbosity brings TensorFlow's lines back (oneDNN's is printed on some CPUs only)
  assert re.search(r"^[IWE]0000|absl::InitializeLog", loud.stderr, re.M), loud.stderr


def test_eval_prints_the_same_test_bits_per_dim(trained):
  workdir, out, _ = trained
  train_line = [l for l in out.splitlines() if l.startswith("test bits/dim: ")][0]
  eval_out = run_cli("evaluate", f"--workdir={workdir}").stdout
  assert train_line in eval_out.splitlines()


def test_eval_fid_and_nearest_neighbours_of_a_flow(trained, tmp_path):
  """The sample-quality modes serve flows as they serve NCSNv2: the protocol names the
  temperature, and the memorisation check runs on pixels and in the features."""
  workdir, _, _ = trained
  out = run_cli("evaluate", f"--workdir={workdir}", "--fid", "--fid_samples=32",
                "--nearest_neighbours", "--num_samples=2", "--neighbours=1",
                f"--out={tmp_path / 'nn.png'}").stdout
  assert re.search(r"^protocol: 32 samples \(seed 0, temperature 1, [\d.]+ s\) against the "
                   r"359 test images of digits; features: a CNN classifier", out, re.M), out
  assert re.search(r"^FID: [\d.]+$", out, re.M) and re.search(r"^KID: -?[\d.]+ ±", out, re.M)
  assert re.search(r"^samples / test \(features\): [\d.]+", out, re.M), out
  assert (tmp_path / "nn.png").exists() and (tmp_path / "nn_features.png").exists()


def test_sample_writes_a_png_grid_at_a_temperature(trained, tmp_path):
  workdir, _, _ = trained
  out = tmp_path / "grid.png"
  msg = run_cli("sample", f"--workdir={workdir}", "--num_samples=9", "--temperature=0.7",
                f"--out={out}").stdout
  assert "9 samples at temperature 0.7" in msg
  grid = np.asarray(Image.open(out))
  assert grid.ndim == 2 and grid.shape[0] == grid.shape[1] > 3 * 8


def test_train_again_resumes_instead_of_restarting(trained):
  workdir, _, _ = trained
  out = run_cli("train", f"--config={CONFIG}:digits", f"--workdir={workdir}", *TINY,
                "--config.train.num_steps=10", "--config.train.ema_decay=0.9").stdout
  assert "Resumed from" in out and "Initialised" not in out


def test_the_same_command_in_a_new_workdir_loads_the_compiled_step_quietly(tmp_path):
  cache = tmp_path / "cache"

  def train(workdir):
    return run_cli("train", f"--config={CONFIG}:digits", f"--workdir={workdir}", *TINY,
                   "--config.train.num_steps=10", "--config.train.jit_compile=true",
                   f"--xla_cache={cache}")
  first = train(tmp_path / "a")
  assert re.search(r"^First step \(data-dependent init, tracing and XLA compiling\) took "
                   r"[\d.]+ s\.$", first.stdout, re.M)
  # the compiled step, kept for the next run (gflow.xla_cache)
  files = {f: os.stat(cache / f).st_mtime_ns for f in os.listdir(cache)}
  assert any(f.startswith("xla_compile_cache") for f in files)
  proc = train(tmp_path / "b")
  # loaded: a compilation would have written its program (a new file, or this one again)
  assert {f: os.stat(cache / f).st_mtime_ns for f in os.listdir(cache)} == files
  assert not (tmp_path / "b" / "xla_cache").exists()
  assert not re.search(r"^[IWE]0000", proc.stderr, re.M), proc.stderr  # harmless lines hidden


def test_list_shows_plugins_and_bijectors_with_their_distribution():
  out = run_cli("list_plugins").stdout
  assert "glow" in out and "model" in out and "gflow" in out
  for name in ("actnorm", "conv1x1_lu", "squeeze", "factor_out", "uniform_dequantization"):
    assert name in out


@pytest.mark.parametrize("args,message", [
    (["--config.train.batchsize=3"], 'unknown config field .*Did you mean "batch_size"'),
    (["--config.model.name=glwo"], "Unknown model 'glwo'. Did you mean 'glow'"),
    (["--config.data.name=digitz"], "Unknown dataset 'digitz'. Did you mean 'digits'"),
    (["--config.data.name=folder", "--config.data.path=/nonexistent/images"],
     "Image folder '/nonexistent/images' does not exist"),
    (["--strategy=multi_worker"], "needs TF_CONFIG"),
    (["--config.train.optimizer=adamm", "--config.train.batch_size=0",
      "--config.train.log_every=-5", "--config.model.coupling=afine"],
     r"^error: bad config: config.train.batch_size must be a whole number >= 1; got 0; "
     r"config.train.log_every must be a whole number >= 1; got -5; Unknown optimizer "
     r"\(config.train.optimizer\) 'adamm'; did you mean 'adam'\? choose one of 'adam', "
     r"'adamax'.\n$"),
    (["--config.model.coupling=afine"],
     "^error: Unknown coupling kind 'afine'; did you mean 'affine'\\? choose one of"),
])
def test_bad_input_gives_one_clear_line(tmp_path, args, message):
  import re
  env = {"TF_CONFIG": ""} if "--strategy=multi_worker" in args else None
  proc = run_cli("train", f"--config={CONFIG}:digits", f"--workdir={tmp_path}", *args,
                 check=False, env=env)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert re.search(message, proc.stderr), proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr


def test_eval_of_a_missing_workdir(tmp_path):
  proc = run_cli("evaluate", f"--workdir={tmp_path / 'nope'}", check=False)
  assert proc.returncode == 2 and "a gflow-train workdir?" in proc.stderr


@pytest.mark.parametrize("script,args,message", [
    ("evaluate", ["--batch_size=-1"], "flag --batch_size=-1: -1 is not a non-negative integer"),
    ("sample", ["--temperature=nan"], "--temperature must be a finite number > 0; got nan"),
    ("sample", ["--out=grid.jpg"], "this model writes .png files; give a path ending in .png"),
])
def test_bad_flags_of_eval_and_sample_are_one_line_errors(trained, tmp_path, script, args,
                                                          message):
  workdir, _, _ = trained
  args = [a.replace("grid.jpg", str(tmp_path / "grid.jpg")) for a in args]
  proc = run_cli(script, f"--workdir={workdir}", *args, check=False)
  assert proc.returncode == 2 and message in proc.stderr, proc.stderr
  assert "Traceback" not in proc.stderr and not os.listdir(tmp_path)


def test_help_of_the_console_scripts_lists_their_flags():
  import subprocess
  import sys
  script = os.path.join(os.path.dirname(sys.executable), "gflow-eval")
  out = subprocess.run([script, "--helpshort"], capture_output=True, text=True).stdout
  for flag in ("--workdir", "--num_importance_samples", "--batch_size", "--[no]ema"):
    assert flag in out, out


def test_every_python_block_of_the_readme_runs_as_written(trained, tmp_path):
  """Against a short training run at runs/digits, as a newcomer would have one."""
  import subprocess
  import sys

  from tests.conftest import REPO
  with open(os.path.join(REPO, "README.md")) as f:
    blocks = re.findall(r"^```python\n(.*?)^```$", f.read(), re.S | re.M)
  assert len(blocks) >= 2
  os.makedirs(tmp_path / "runs")
  os.symlink(trained[0], tmp_path / "runs" / "digits")
  for block in blocks:
    proc = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{block}\n{proc.stderr[-3000:]}"


def test_user_errors_are_one_line_and_library_errors_keep_their_traceback():
  from gflow.cli.common import raised_inside_a_library
  from gflow.train.validate import ConfigError, validate

  def catch(fn):
    try:
      fn()
    except (ValueError, TypeError) as e:
      return e
    raise AssertionError("no error")
  import ml_collections
  import tensorflow as tf
  ours = catch(lambda: validate(ml_collections.ConfigDict({"train": {"batch_size": 0}})))
  assert isinstance(ours, ConfigError) and not raised_inside_a_library(ours)
  theirs = catch(lambda: tf.TensorShape([2]).merge_with([3]))  # as a bug in gflow would
  assert raised_inside_a_library(theirs)
