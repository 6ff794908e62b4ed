"""The model protocol: Glow and DenseFlow follow it, and a model of another kind (the
test plugin's conditional flow over 1-D signals, written against the protocol alone)
trains, evaluates, samples and resumes through the same console scripts."""

import os
import re

import pytest
import tensorflow as tf

import gflow
from gflow.model import check_model
from gflow.train import Trainer
from gflow.train.trainer import build_model
from tests.conftest import CONFIG, REPO, run_cli

PLUGIN_SITE = os.path.join(REPO, "tests", "testdata", "plugin_site")
COND1D = [f"--config={CONFIG}:digits", "--config.model.name=cond1d",
          "--config.data.name=noisy_sines", "--config.model.steps=4", "--config.model.width=32",
          "--config.train.batch_size=32", "--config.train.log_every=20",
          "--config.train.checkpoint_every=60", "--config.train.eval_every=100000",
          "--config.train.sample_every=100000", "--config.eval.num_samples=3",
          "--config.train.jit_compile=false"]
ENV = {"PYTHONPATH": PLUGIN_SITE}


def _losses(out):
  return [float(m) for m in re.findall(r"\| loss \(nats/sample\) ([-\d.]+) \|", out)]


@pytest.fixture(scope="module")
def cond1d_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("cond1d"))
  out = run_cli("train", *COND1D, f"--workdir={workdir}", "--config.train.num_steps=120",
                env=ENV).stdout
  return workdir, out


def test_a_model_of_another_kind_learns_through_gflow_train(cond1d_run):
  workdir, out = cond1d_run
  losses = _losses(out)
  assert len(losses) == 6, out
  assert losses[-1] < losses[0] - 0.3, losses  # it learns, not only runs
  final = re.findall(r"^test log-likelihood: ([-\d.]+) ± [\d.]+ nats/sample$", out, re.M)
  assert len(final) == 1, out
  wavs = sorted(os.listdir(os.path.join(workdir, "samples")))
  assert wavs == [f"step_0000120_{i:03d}.wav" for i in range(3)]


def test_eval_sample_and_resume_go_through_the_protocol(cond1d_run, tmp_path):
  workdir, out = cond1d_run
  final = re.findall(r"^test log-likelihood: ([-\d.]+) ± [\d.]+ nats/sample$", out, re.M)[0]
  evaluated = run_cli("evaluate", f"--workdir={workdir}", env=ENV).stdout
  assert f"test log-likelihood: {final} ± " in evaluated  # mean ± standard error
  sampled = run_cli("sample", f"--workdir={workdir}", "--num_samples=2",
                    f"--out={tmp_path / 'wave'}", env=ENV).stdout
  assert "2 files" in sampled and os.path.getsize(tmp_path / "wave_001.wav") > 44
  waves, rate = gflow.io.read_wav(str(tmp_path / "wave_000.wav"))
  assert rate == 8000 and waves.shape == (16,)
  resumed = run_cli("train", *COND1D, f"--workdir={workdir}", "--config.train.num_steps=140",
                    env=ENV).stdout
  assert "Resumed from" in resumed and "(step 120)" in resumed


def test_glow_and_denseflow_follow_the_protocol(tiny_config):
  glow = build_model(tiny_config, (8, 8, 1))
  assert isinstance(glow, gflow.Model)
  from tests.test_denseflow import tiny_config as denseflow_config
  denseflow = build_model(denseflow_config(), (8, 8, 1))
  assert isinstance(denseflow, gflow.Model)
  for model in (glow, denseflow):
    batch = {"x": tf.random.stateless_uniform([2, 8, 8, 1], [0, 1], 0, 256)}
    loss = model.loss(batch, gflow.Noise([1, 2]))
    figures = model.evaluate(batch, gflow.Noise([1, 2]))
    assert loss.shape == (2,) and list(figures) == ["bits/dim"]
    assert figures["bits/dim"].shape == (2,)
    assert model.generate(3, seed=[0, 1]).dtype == tf.uint8


def test_gflow_models_trace_without_autograph_and_other_models_with_it():
  """gflow's models opt out of autograph (their traces are faster); a plugin's model
  keeps it by default: the cond1d test model's loss has an `if` on a tensor, and it
  learns through gflow-train (test_a_model_of_another_kind_learns_through_gflow_train)."""
  from gflow_waveflow.model import WaveFlow

  from gflow.score import ScoreModel
  for cls in (gflow.Flow, gflow.AugmentedFlow, ScoreModel, WaveFlow):
    assert cls.autograph is False, cls
  assert gflow.model.LayerModel.autograph is True


def test_a_builder_returning_something_else_is_named():
  with pytest.raises(TypeError, match=r"plugin 'mine' built \(object\) lacks layer, "
                     r"trainable_variables, outputs, loss_name.*gflow model protocol"):
    check_model(object(), "mine")


def test_training_lowers_test_bits_per_dim_clearly(tmp_path, tiny_config):
  """~100 steps of the tiny Glow on the digits: a clear fall in test bits/dim."""
  c = tiny_config
  c.train.num_steps, c.train.warmup_steps, c.train.ema_decay = 100, 10, 0.0
  c.train.log_every = c.train.checkpoint_every = 100
  c.eval.batch_size = 400
  trainer = Trainer(c, str(tmp_path), verbose=False)
  trainer.initialize()
  before, stderr = trainer.evaluate()["bits/dim"]
  after, _ = trainer.train()["bits/dim"]
  # 8.48 → 7.68 when written; the standard error over the test digits is ≈ 0.005.
  assert after < before - 0.5 and before - after > 50 * stderr, (before, after, stderr)
