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
  png = os.path.join(workdir, "samples", "step_0000010.png")
  assert Image.open(png).size[0] > 8


def test_the_terminal_shows_what_gflow_did_and_no_tensorflow_start_up_lines(trained):
  workdir, out, err = trained
  assert not re.search(r"^[IWE]0000|cuInit|oneDNN|absl::InitializeLog", err, re.M), err
  assert re.search(r"^First step \(tracing and XLA compiling\) took [\d.]+ s\.$", out, re.M)
  first = re.search(r"^step  5/10 \| .* \| ([\d.]+) steps/s \| ETA", out, re.M)
  assert first and float(first.group(1)) > 2, out  # compile time is not in steps/s
  assert f"Saved {workdir / 'checkpoints' / 'ckpt-10'}" in out.splitlines()
  assert re.search(r"^Done: steps 0→10 in 0:\d\d:\d\d; final test bits/dim [\d.]+, "
                   r"best [\d.]+ at step 10\.$", out, re.M), out
  best = json.loads((workdir / "checkpoints" / "best" / "best.json").read_text())
  assert best["figure"] == "bits/dim" and best["step"] == 10
  loud = run_cli("info", f"--config={CONFIG}:digits", "--verbosity=0")
  assert "oneDNN" in loud.stderr  # --verbosity brings TensorFlow's lines back


def test_eval_prints_the_same_test_bits_per_dim(trained):
  workdir, out, _ = trained
  train_line = [l for l in out.splitlines() if l.startswith("test bits/dim: ")][0]
  eval_out = run_cli("evaluate", f"--workdir={workdir}").stdout
  assert train_line in eval_out.splitlines()


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
    (["--config.train.optimizer=sgd"], "Unknown optimizer 'sgd'"),
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
