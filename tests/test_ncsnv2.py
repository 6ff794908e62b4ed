"""NCSNv2 through the framework: the network's published size, its parts against their
formulas, the configs against the calculators, and a tiny run trained, evaluated and
sampled by the same binaries as the flows."""

import math
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from gflow import Noise
from gflow.nets.instance_norm_plus import InstanceNormPlus
from gflow.nets.refine_blocks import _resize_aligned
from gflow.nets.refinenet import NCSNv2RefineNet
from gflow.score import noise_levels as nl
from gflow.score.exact_score import ExactScore
from gflow.score.langevin import AnnealedLangevin
from gflow.train.trainer import build_model
from tests.conftest import REPO, model_config, run_cli

NCSN_CONFIG = os.path.join(REPO, "configs", "ncsnv2.py")
TINY_NCSN = ["--config.model.ngf=8", "--config.train.batch_size=32",
             "--config.eval.num_samples=8", "--config.train.log_every=10",
             "--config.model.eval_levels=3"]


def ncsnv2_config(arg="digits"):
  return model_config("ncsnv2", arg)


def _count(layer):
  return sum(math.prod(v.shape) for v in layer.trainable_weights)


def test_the_refinenet_has_ncsnv2s_29_7_million_parameters_at_32x32():
  net = NCSNv2RefineNet(3, ngf=128)
  net.build((None, 32, 32, 3))
  assert _count(net) == 29_694_083  # the official NCSNv2 (CIFAR-10), counted by hand
  small = NCSNv2RefineNet(1, ngf=8)
  small.build((None, 8, 8, 1))
  h = small(tf.random.uniform([2, 8, 8, 1]))
  assert h.shape == (2, 8, 8, 1) and np.all(np.isfinite(h.numpy()))
  conditional = NCSNv2RefineNet(1, ngf=8, num_levels=5)
  conditional.build((None, 8, 8, 1))
  norms = [l for l in small._flatten_layers() if isinstance(l, InstanceNormPlus)]
  assert len(norms) == 17  # 2 per residual block and the last; 3 parameters per channel
  assert _count(conditional) - _count(small) == 4 * sum(_count(l) for l in norms)
  x = tf.random.uniform([2, 8, 8, 1])
  a, b = conditional(x, tf.constant([0, 4])), conditional(x, tf.constant([4, 4]))
  np.testing.assert_allclose(a[1].numpy(), b[1].numpy(), rtol=1e-5, atol=1e-6)
  assert np.abs(a[0].numpy() - b[0].numpy()).max() > 1e-4  # the level matters


def test_instance_norm_plus_against_its_formula():
  rng = np.random.RandomState(0)
  x = rng.randn(3, 4, 5, 6).astype(np.float32) * 2 + rng.randn(1, 1, 1, 6) * 3
  norm = InstanceNormPlus()
  norm.build(x.shape)
  norm.beta.assign(rng.randn(6).astype(np.float32))
  mu = x.mean(axis=(1, 2), keepdims=True)
  h = (x - mu) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)
  means = mu[:, 0, 0]
  scaled = (means - means.mean(-1, keepdims=True)) / np.sqrt(
      means.var(-1, ddof=1, keepdims=True) + 1e-5)
  expected = (norm.gamma.numpy() * (h + norm.alpha.numpy() * scaled[:, None, None])
              + norm.beta.numpy())
  np.testing.assert_allclose(norm(tf.constant(x)).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_bilinear_upsampling_aligns_the_corners():
  x = tf.constant(np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1))
  y = _resize_aligned(x, (3, 5)).numpy()[0, ..., 0]
  rows = np.array([0, 0.5, 1.0])[:, None] * 3  # corner-aligned: src = dst·(in−1)/(out−1)
  cols = np.linspace(0, 2, 5)[None]
  np.testing.assert_allclose(y, rows + cols, rtol=1e-6)


def test_the_configs_are_the_papers_and_the_digits_sigma_1_is_exact():
  cifar, celeba = ncsnv2_config("cifar10"), ncsnv2_config("celeba")
  assert (cifar.model.sigma_1, cifar.model.num_scales, cifar.model.sampling.steps) == (50, 232, 5)
  assert cifar.model.sampling.eps == pytest.approx(6.2e-6)
  assert (cifar.train.batch_size, cifar.train.learning_rate, cifar.train.num_steps,
          cifar.train.ema_decay) == (128, 1e-4, 300_000, 0.999)
  assert (celeba.model.sigma_1, celeba.model.num_scales) == (90, 500)
  assert celeba.model.sampling.eps == pytest.approx(3.3e-6)
  assert celeba.train.num_steps == 210_000 and celeba.data.image_size == 64
  from gflow.data import load_digits
  digits = load_digits(256)
  c = ncsnv2_config("digits")
  exact = nl.max_pairwise_distance(digits.train / 255.0).value
  assert c.model.sigma_1 == pytest.approx(exact, abs=1e-4)
  assert c.model.num_scales == nl.num_levels_for(exact, 0.01, 64).value


@pytest.fixture(scope="module")
def tiny_model():
  c = ncsnv2_config()
  c.model.update(ngf=8, eval_levels=3)
  return build_model(c, (8, 8, 1))


def test_the_score_divides_the_network_by_sigma_and_the_schedule_is_checkpointed(tiny_model):
  m = tiny_model
  x = tf.random.uniform([3, 8, 8, 1])
  levels = tf.constant([0, 5, 21])
  sigmas = m.sigmas.numpy()
  np.testing.assert_allclose(m.score(x, levels).numpy(),
                             m.network(x).numpy() / sigmas[[0, 5, 21], None, None, None],
                             rtol=1e-5)
  assert len(sigmas) == 22 and sigmas[0] == pytest.approx(4.8137) and sigmas[-1] == \
      pytest.approx(0.01)
  schedule = [v for v in m.layer.variables if v.path.endswith("sigmas")]
  assert len(schedule) == 1 and not schedule[0].trainable
  assert all(v is not schedule[0] for v in m.trainable_variables)
  figures = m.evaluate({"x": tf.random.uniform([4, 8, 8, 1], 0, 256)}, Noise([1, 2]))
  assert list(figures) == ["dsm", "dsm σ1=4.81", "dsm σ11=0.254", "dsm σ22=0.01"]
  with pytest.raises(ValueError, match="no temperature"):
    m.generate(2, [0, 0], temperature=0.8)


def test_mixed_bfloat16_refinenet_scores_in_float32_close_to_float32(tiny_model):
  """network_dtype=mixed_bfloat16: float32 variables, bfloat16 convolutions, InstanceNorm++
  statistics and the score in float32; with the same weights the score stays within a few
  bfloat16 roundings of the float32 network's, and the loss has float32 gradients."""
  c = ncsnv2_config()
  c.model.update(ngf=8, eval_levels=3, network_dtype="mixed_bfloat16")
  half = build_model(c, (8, 8, 1))
  assert {v.dtype for v in half.layer.variables} == {"float32"}
  assert half.network.compute_dtype == "bfloat16"
  pairs = list(zip(half.layer.variables, tiny_model.layer.variables, strict=True))
  for a, b in pairs:  # the same build order; names differ by Keras' unique suffixes
    assert a.path.split("/")[-1] == b.path.split("/")[-1] and a.shape == b.shape
    a.assign(b)
  x = tf.random.stateless_uniform([4, 8, 8, 1], [3, 4])
  levels = tf.constant([0, 7, 14, 21])
  full, low = tiny_model.score(x, levels), half.score(x, levels)
  assert low.dtype == tf.float32
  err = np.abs(low.numpy() - full.numpy()).max(axis=(1, 2, 3))
  scale = np.abs(full.numpy()).max(axis=(1, 2, 3))
  assert np.all(err < 0.05 * scale) and np.all(err > 0), (err, scale)  # bf16, not float32
  # InstanceNorm++'s statistics in float32: on bfloat16-exact inputs its output differs
  # from float32's by the final rounding only (bfloat16's unit roundoff, 2⁻⁸ relative)
  norm32, norm16 = InstanceNormPlus(), InstanceNormPlus(dtype="mixed_bfloat16")
  h = tf.cast(tf.cast(tf.random.stateless_normal([2, 8, 8, 16], [7, 8]) * 3 + 40,
                      tf.bfloat16), tf.float32)
  norm32.build(h.shape)
  norm16.build(h.shape)
  for a, b in zip(norm16.weights, norm32.weights, strict=True):
    b.assign(tf.cast(tf.cast(b + 0.3, tf.bfloat16), tf.float32))  # bf16-exact weights
    a.assign(b)
  out32 = norm32(h).numpy()
  out16 = tf.cast(norm16(tf.cast(h, tf.bfloat16)), tf.float32).numpy()
  assert np.all(np.abs(out16 - out32) <= 2.0 ** -8 * np.abs(out32) + 1e-7)
  batch = {"x": tf.random.stateless_uniform([8, 8, 8, 1], [5, 6], 0, 256)}
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(half.loss(batch, Noise([1, 2])))
  grads = tape.gradient(loss, half.trainable_variables)
  assert loss.dtype == tf.float32 and np.isfinite(loss.numpy())
  assert all(g is not None and g.dtype == tf.float32 and np.all(np.isfinite(g.numpy()))
             for g in grads)


def test_the_exact_score_baseline_samples_copies_of_training_digits():
  """The optimal DSM solution for the empirical distribution, sampled with the same
  annealed Langevin dynamics: every sample lands on a training digit (memorisation)."""
  from gflow.data import load_digits
  train = load_digits(256).train[:300].astype(np.float32) / 255.0
  c = ncsnv2_config()
  sigmas = nl.geometric_sigmas(c.model.sigma_1, c.model.sigma_l, c.model.num_scales)
  sampler = AnnealedLangevin(ExactScore(train, sigmas), sigmas, c.model.sampling.eps,
                             c.model.sampling.steps, jit_compile=False)
  x = sampler.sample([16, 8, 8, 1], seed=[0, 0]).numpy().reshape(16, -1)
  flat = train.reshape(len(train), -1)
  nearest = np.sqrt(((x[:, None] - flat[None]) ** 2).sum(-1)).min(axis=1)
  typical = np.sqrt(((flat[:16, None] - flat[None, 16:]) ** 2).sum(-1)).min(axis=1)
  assert nearest.max() < 0.1 and typical.min() > 10 * nearest.max(), (nearest, typical)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("ncsnv2") / "run")
  proc = run_cli("train", f"--config={NCSN_CONFIG}:digits", f"--workdir={workdir}",
                 *TINY_NCSN, "--config.train.num_steps=60", "--config.train.eval_every=1000",
                 "--config.train.sample_every=1000", "--config.train.checkpoint_every=30")
  return workdir, proc.stdout


def test_a_tiny_ncsnv2_learns_through_gflow_train(trained):
  _, out = trained
  losses = [float(v) for v in re.findall(r"^step +\d+/60 \| loss \(dsm\) ([\d.]+)", out, re.M)]
  assert len(losses) == 6 and losses[-1] < 0.8 * losses[0], losses
  assert re.search(r"^test dsm: [\d.]+ ± [\d.]+$", out, re.M), out
  assert re.search(r"^test dsm σ22=0.01: [\d.]+ ± [\d.]+$", out, re.M), out


def test_gflow_eval_and_gflow_sample_serve_the_score_model(trained, tmp_path):
  workdir, out = trained
  final = re.search(r"^test dsm: ([\d.]+)", out, re.M).group(1)
  evaluated = run_cli("evaluate", f"--workdir={workdir}").stdout
  assert f"test dsm: {final}" in evaluated, evaluated
  assert "dsm σ1=4.81" in evaluated
  proc = run_cli("sample", f"--workdir={workdir}", "--num_samples=9",
                 f"--out={tmp_path / 'grid.png'}")
  assert (tmp_path / "grid.png").exists()
  assert "111 network evaluations" in proc.stdout, proc.stdout  # 22 levels × 5 + denoising
  assert "level 22/22" in proc.stderr, proc.stderr  # the progress bar


def test_gflow_noise_schedule_prints_each_value_with_its_rule():
  out = run_cli("noise_schedule", f"--config={NCSN_CONFIG}:digits").stdout
  assert "sigma_1 = 4.81372  (technique 1: the largest pairwise" in out, out
  assert "L = 22  (technique 2:" in out and "eps = 2.4e-05  (technique 4:" in out, out
  assert "--config.model.num_scales=22 --config.model.sampling.eps=2.4e-05" in out, out


def test_gflow_eval_nearest_neighbours_and_fid(trained, tmp_path):
  """The memorisation grid with its distances, then FID and KID with their protocol, in
  one call (both modes share the loaded model)."""
  workdir, _ = trained
  out = run_cli("evaluate", f"--workdir={workdir}", "--nearest_neighbours", "--num_samples=4",
                "--neighbours=2", f"--out={tmp_path / 'nn.png'}", "--fid",
                "--fid_samples=64").stdout
  assert re.search(r"^nearest training image, samples: [\d.]+ ± [\d.]+$", out, re.M), out
  assert re.search(r"^nearest training image, test images: [\d.]+ ± [\d.]+ \(256 held-out",
                   out, re.M), out
  assert re.search(r"^nearest training image \(features\), samples: [\d.]+ ± [\d.]+$", out,
                   re.M), out
  assert re.search(r"^samples / test \(features\): [\d.]+ \(", out, re.M), out
  assert "(L2 in the features of a CNN classifier trained on the digits" in out, out
  from PIL import Image
  # 4 rows of a sample and 2 neighbours: 8x8 cells with 1-pixel borders, upscaled 8x
  for name in ("nn.png", "nn_features.png"):
    assert Image.open(tmp_path / name).size == ((3 * 8 + 4) * 8, (4 * 8 + 5) * 8)
  assert re.search(r"^protocol: 64 samples \(seed 0, final denoising step on, [\d.]+ s\) "
                   r"against the 359 test images of digits; features: a CNN classifier", out,
                   re.M), out
  fid_value = float(re.search(r"^FID: ([\d.]+)$", out, re.M).group(1))
  assert re.search(r"^KID: -?[\d.]+ ± [\d.]+$", out, re.M), out
  floor = float(re.search(r"^real train images .* FID ([\d.]+),", out, re.M).group(1))
  assert fid_value > floor  # 60 steps of a tiny network are far from the data


def test_nearest_neighbours_are_exact():
  from gflow.metrics.nearest_neighbours import nearest_neighbours
  rng = np.random.RandomState(2)
  train = rng.randint(0, 256, (300, 4, 4, 1)).astype(np.uint8)
  queries = np.concatenate([train[[7, 150]], rng.randint(0, 256, (3, 4, 4, 1)).astype(np.uint8)])
  idx, dist = nearest_neighbours(queries, train, k=3, chunk=64)
  flat = lambda a: a.reshape(len(a), -1).astype(np.float64) / 255
  brute = np.sqrt(((flat(queries)[:, None] - flat(train)[None]) ** 2).sum(-1))
  np.testing.assert_array_equal(idx, np.argsort(brute, axis=1)[:, :3])
  np.testing.assert_allclose(dist, np.sort(brute, axis=1)[:, :3], rtol=1e-6, atol=1e-9)
  assert list(idx[:2, 0]) == [7, 150] and dist[0, 0] == 0


@pytest.mark.slow  # suite time: Glow's kill test runs by default through the same trainer
def test_a_killed_ncsnv2_run_resumes_to_the_uninterrupted_weights(tmp_path):
  import subprocess
  import sys

  from tests.helpers.kill import checkpoint_values, kill_then_resume
  steps = 80

  def cmd(workdir):
    return [sys.executable, "-m", "gflow.cli.train", f"--config={NCSN_CONFIG}:digits",
            f"--workdir={workdir}", *TINY_NCSN, f"--config.train.num_steps={steps}",
            "--config.train.checkpoint_every=10", "--config.train.eval_every=1000",
            "--config.train.sample_every=1000"]
  subprocess.run(cmd(tmp_path / "full"), cwd=REPO, check=True, capture_output=True)
  killed_at, at_kill, _ = kill_then_resume(cmd(tmp_path / "killed"), tmp_path / "killed",
                                           kill_after=30)
  assert killed_at < steps
  _, a = checkpoint_values(str(tmp_path / "full" / "checkpoints"))
  _, b = checkpoint_values(str(tmp_path / "killed" / "checkpoints"))
  assert a.keys() == b.keys() and any("ema/" in k for k in a)
  moved = [np.abs(b[k] - at_kill[k]).max() > 1e-4 for k in a if k.startswith("model/")
           and "sigmas" not in k]
  assert np.mean(moved) > 0.5  # the resumed steps moved the weights
  for k in a:  # weights, the σ schedule, optimizer slots, EMA and step
    np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)
