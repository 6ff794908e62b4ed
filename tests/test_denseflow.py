"""DenseFlow: the bound is a bound, the model round-trips, ablations train, configs count."""

import dataclasses
import functools
import json
import math
import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from gflow import layers as gl
from gflow import nets
from gflow import examples
from gflow.flows import AugmentedFlow
from gflow.noise import Noise
from gflow.train import Trainer
from gflow.train.schedule import WarmupExponentialDecay
from tests.conftest import REPO, run_cli

DF_CONFIG = os.path.join(REPO, "configs", "denseflow.py")
# A DenseFlow on the digits small enough to trace and train a step in seconds.
TINY_DF = [
    "--config.model.units=(2, 1)", "--config.model.modules=(1, 1)",
    "--config.model.growth=2", "--config.model.width=8", "--config.model.dense_depth=2",
    "--config.model.dense_growth=8", "--config.model.embed_dim=4",
    "--config.model.dequantizer.steps=1", "--config.model.dequantizer.width=8",
    "--config.model.dequantizer.context_channels=8", "--config.model.dequantizer.depth=1",
    "--config.model.dequantizer.growth=8", "--config.train.batch_size=16",
    "--config.train.init_batch_size=32", "--config.train.log_every=1",
    "--config.eval.batch_size=400", "--config.eval.num_samples=4",
    "--config.train.jit_compile=False",
]


def denseflow_config(arg="digits"):
  sys.path.insert(0, os.path.join(REPO, "configs"))
  try:
    import denseflow
  finally:
    sys.path.pop(0)
  return denseflow.get_config(arg)


def tiny_config():
  c = denseflow_config()
  for flag in TINY_DF:
    key, value = flag[len("--config."):].split("=")
    *path, leaf = key.split(".")
    node = c
    for p in path:
      node = node[p]
    kind = node.get_type(leaf)  # a placeholder's (e.g. train.jit_compile: bool) when unset
    node[leaf] = kind(eval(value)) if kind is tuple else kind(
        value == "True" if kind is bool else value)
  return c


# -- the bound is a bound ---------------------------------------------------------------
def _one_dim_model():
  """Data v ∈ R (a 1x1x1 image), one noise channel: [v, y] → z ∈ R² by a unit of two
  random affine couplings; the noise is preconditioned by a random g(v)."""
  net = functools.partial(nets.GlowCNN, width=8)
  unit0 = gl.SequentialFlow([gl.ActNormLayer()])
  unit1 = gl.SequentialFlow([gl.CouplingLayer(net, scale_fn="exp_tanh"), gl.ChannelSwapLayer(),
                             gl.CouplingLayer(net, scale_fn="exp_tanh")])
  block = gl.CrossUnitBlock([unit0, unit1], growth=1)
  model = AugmentedFlow(gl.StochasticSequential([block]), (1, 1, 1), num_levels=256)
  for i, layer in enumerate([block.noise_nets[0], unit1.flow_layers[0].network,
                             unit1.flow_layers[2].network]):
    examples.randomize(layer, scale=0.6, seed=i)
    for v in layer.weights:  # ZeroConv2D's exp(3·log_scale) would make it extreme
      if "log_scale" in v.name:
        v.assign(tf.zeros_like(v))
  unit0.flow_layers[0].log_scale.assign([0.5])
  return model, block


def _true_log_prob(block, v):
  """log ∫ p([v, y]) dy by the trapezoid rule, p([v, y]) = N(z) |det ∂z/∂(v, y)| from
  autodiff of the bijective map alone (no bound code involved)."""
  y_grid = tf.linspace(-40., 40., 20001)
  vv = tf.fill(y_grid.shape, float(v))

  def to_latent(vy):  # [N, 2] → [N, 2]
    h = block.units[0].bijector().forward(tf.reshape(vy[:, :1] / 256. - 0.5, [-1, 1, 1, 1]))
    h = tf.concat([h, tf.reshape(vy[:, 1:], [-1, 1, 1, 1])], axis=-1)
    return tf.reshape(block.units[1].bijector().forward(h), [-1, 2])

  vy = tf.stack([vv, y_grid], axis=1)
  with tf.GradientTape() as tape:
    tape.watch(vy)
    z = to_latent(vy)
  jac = tape.batch_jacobian(z, vy)
  log_joint = (-0.5 * tf.reduce_sum(z ** 2, 1) - math.log(2 * math.pi)
               + tf.math.log(tf.abs(tf.linalg.det(jac))))
  dens = np.exp(np.float64(log_joint.numpy()))
  assert dens[0] < 1e-12 * dens.max() and dens[-1] < 1e-12 * dens.max()  # grid covers it
  return float(np.log(np.trapezoid(dens, y_grid.numpy().astype(np.float64))))


@pytest.mark.parametrize("v", [60., 128., 200.])
def test_single_sample_bound_le_k_sample_estimate_le_true_log_likelihood(v):
  model, block = _one_dim_model()
  truth = _true_log_prob(block, v)
  reps = 400
  x = tf.fill([reps, 1, 1, 1], v)
  estimates = {}
  for k in (1, 10, 100):
    est = model.log_prob(x, seed=[k, 7], num_samples=k, chunk_size=50).numpy()
    estimates[k] = (est.mean(), est.std(ddof=1) / math.sqrt(reps))
  big = model.log_prob(x[:20], seed=[3, 3], num_samples=3000, chunk_size=1000).numpy()
  (m1, s1), (m10, s10), (m100, s100) = estimates[1], estimates[10], estimates[100]
  # The gap is real on this model (the posterior over the noise is not its prior)...
  assert truth - m1 > 1.0, (truth, m1)
  # ... ordered in expectation: E log w ≤ E IW_10 ≤ E IW_100 ≤ log p(v) ...
  assert m1 <= m10 + 3 * math.hypot(s1, s10)
  assert m10 <= m100 + 3 * math.hypot(s10, s100)
  assert m100 <= truth + 3 * s100
  # ... and the K-sample estimate approaches the truth as K grows.
  assert truth - m100 < 0.1 * (truth - m1)
  assert abs(big.mean() - truth) < 0.03, (big.mean(), truth)


# -- the model ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model():
  from gflow.train.trainer import build_model
  model = build_model(tiny_config(), (8, 8, 1))
  x = tf.cast(tf.random.stateless_uniform([32, 8, 8, 1], [1, 2], 0, 256, tf.int32), tf.float32)
  model.initialize(x + 0.5)
  return model


def test_sample_forward_generate_round_trip(tiny_model):
  v = tiny_model.sample(4, seed=3)
  assert v.shape == (4, 8, 8, 1)
  y = tiny_model._uniform.forward(v)
  z, _ = tiny_model.flow.forward_and_bound(y, Noise([1, 1]))
  assert z.shape == (4, *tiny_model.latent_shape)
  assert tiny_model.latent_shape[0] > 64  # augmented: more latent than data dimensions
  back = tiny_model._uniform.inverse(tiny_model.flow.generate(z, Noise([2, 2])))
  np.testing.assert_allclose(back, v, atol=2e-3)


def test_estimates_are_deterministic_given_the_seed(tiny_model):
  x = tf.constant(np.random.RandomState(0).randint(0, 256, (3, 8, 8, 1)), tf.int32)
  a = tiny_model.bits_per_dim(x, seed=[5, 1], num_samples=4, chunk_size=3)
  b = tiny_model.bits_per_dim(x, seed=[5, 1], num_samples=4, chunk_size=3)
  c = tiny_model.bits_per_dim(x, seed=[6, 1], num_samples=4, chunk_size=3)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  np.testing.assert_array_equal(tiny_model.sample(2, seed=1), tiny_model.sample(2, seed=1))


def test_a_thousand_samples_in_chunks_at_batch_one(tiny_model):
  x = tf.constant(np.random.RandomState(1).randint(0, 256, (1, 8, 8, 1)), tf.int32)
  k1000 = tiny_model.bits_per_dim(x, seed=[0, 1], num_samples=1000, chunk_size=100)
  single = [tiny_model.bits_per_dim(x, seed=[i, 2]) for i in range(50)]
  assert np.isfinite(k1000).all() and float(k1000[0]) <= float(np.mean(single))


def test_bad_input(tiny_model):
  with pytest.raises(ValueError, match=r"shape \[N, 8, 8, 1\]"):
    tiny_model.log_prob(tf.zeros([2, 4, 4, 1]))
  with pytest.raises(TypeError, match="bits_per_dim"):
    tiny_model.log_prob(tf.zeros([2, 8, 8, 1], tf.int32))
  with pytest.raises(ValueError, match="positive int"):
    tiny_model.log_prob(tf.zeros([2, 8, 8, 1]), num_samples=0)


# -- ablations, configs, schedule --------------------------------------------------------
ABLATIONS = {
    "no augmentation": dict(augment=False),
    "white noise": dict(preconditioned=False),
    "glow coupling": dict(coupling="glow", glow_width=8),
    "g over the last representation": dict(noise_context="last"),
    "no attention": dict(attention=False),
    "uniform dequantization": dict(dequantization="uniform"),
    "mixed bfloat16 networks": dict(network_dtype="mixed_bfloat16"),
}


# suite time: mixed bfloat16 networks train through the trainer in test_train.py
SLOW_ABLATIONS = ("white noise", "g over the last representation", "mixed bfloat16 networks")


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in SLOW_ABLATIONS else n for n in ABLATIONS])
def test_each_ablation_builds_and_trains_a_step(name):
  """Each switch builds a model whose bound is finite and whose every trainable variable
  moves in two Adam steps (zero-initialised last layers pass gradients on from step 2)."""
  import keras

  from gflow.data import load_digits
  from gflow.train.trainer import build_model
  c = tiny_config()
  c.model.update(ABLATIONS[name])
  model = build_model(c, (8, 8, 1))
  x = tf.constant(load_digits(256).train[:16], tf.float32) + 0.5
  model.initialize(x, seed=Noise([0, 1]))
  variables = list(model.trainable_variables)
  opt = keras.optimizers.Adam(1e-3)
  opt.build(variables)

  @tf.function
  def step(seed):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(model.loss(x, Noise(seed), training=True))
    opt.apply(tape.gradient(loss, variables), variables)
    return loss
  before = [v.numpy().copy() for v in variables]
  losses = [step(tf.constant([i, 2])).numpy() for i in range(2)]
  assert np.all(np.isfinite(losses))
  unchanged = [v.path for b, v in zip(before, variables) if np.array_equal(b, v.numpy())]
  assert not unchanged


def _count(config, shape):
  from gflow.train.trainer import build_model
  return sum(int(np.prod(v.shape)) for v in build_model(config, shape).trainable_variables)


@pytest.mark.parametrize("arg,total", [("cifar10_45_6", 75_020_522), ("cifar10", 130_647_294)])
def test_paper_configs_have_the_reference_parameter_counts(arg, total):
  """The authors' PyTorch build (benchmarks/reference_denseflow_step.py prints it):
  DenseFlow-74-10 130,647,294 trainable parameters and 45-6 75,020,522, of which the
  dequantization flow 2,395,784. (A dense 1x1 kernel, not LU's two C x C triangles, and
  the BN-ReLU-Conv blend before the coupling's output conv.)"""
  from gflow.train.trainer import build_model
  model = build_model(denseflow_config(arg), (32, 32, 3))
  count = lambda vs: sum(int(np.prod(v.shape)) for v in vs)  # noqa: E731
  assert count(model.dequantizer.trainable_variables) == 2_395_784
  assert count(model.trainable_variables) == total


def test_parameter_counts_of_the_small_configs():
  c = denseflow_config("digits")
  assert _count(c, (8, 8, 1)) == _count(denseflow_config("digits"), (8, 8, 1)) > 0
  c.model.augment = False
  assert _count(c, (8, 8, 1)) < _count(denseflow_config("digits"), (8, 8, 1))


def test_learning_rate_warms_up_then_decays_once_per_epoch():
  c = denseflow_config("cifar10").train
  assert (c.warmup_steps, c.decay_steps, c.decay_rate) == (5000, 781, 0.9975)
  lr = WarmupExponentialDecay(c.learning_rate, c.warmup_steps, c.decay_rate, c.decay_steps,
                              c.decay_staircase)
  at = {t: float(lr(t)) for t in (0, 2499, 4999, 5000 + 780, 5000 + 781, 5000 + 7810)}
  np.testing.assert_allclose(at[0], 1e-3 / 5000, rtol=1e-6)
  np.testing.assert_allclose(at[2499], 0.5e-3, rtol=1e-6)
  np.testing.assert_allclose(at[4999], 1e-3, rtol=1e-6)
  np.testing.assert_allclose(at[5000 + 780], 1e-3, rtol=1e-6)     # still the first epoch
  np.testing.assert_allclose(at[5000 + 781], 0.9975e-3, rtol=1e-6)
  np.testing.assert_allclose(at[5000 + 7810], 1e-3 * 0.9975 ** 10, rtol=1e-6)
  imagenet = denseflow_config("imagenet32").train
  assert imagenet.decay_rate == 0.95 and imagenet.batch_size == 64


# -- console scripts ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("denseflow"))
  run_cli("train", f"--config={DF_CONFIG}", f"--workdir={workdir}", *TINY_DF,
          "--config.train.num_steps=3", "--config.train.finetune_steps=2")
  return workdir


def test_eval_prints_the_importance_weighted_estimate_with_its_standard_error(trained):
  one = run_cli("evaluate", f"--workdir={trained}", "--num_images=40").stdout
  many = run_cli("evaluate", f"--workdir={trained}", "--num_images=40",
                 "--num_importance_samples=8", "--importance_chunk=3").stdout
  assert "importance samples: 8" in many
  assert re.search(r"^test bits/dim: [\d.]+ ± [\d.]+$", many, re.M), many
  bpd = lambda out: float(out.split("test bits/dim: ")[1].split()[0])  # noqa: E731
  assert bpd(many) <= bpd(one) + 0.05  # tighter than the single-sample bound on average


def test_sample_at_a_temperature(trained, tmp_path):
  out = str(tmp_path / "grid.png")
  run_cli("sample", f"--workdir={trained}", "--temperature=0.8", f"--out={out}",
          "--num_samples=4")
  assert os.path.getsize(out) > 0


def test_finetune_starts_from_the_trained_weights_at_the_finetune_rate(trained, tmp_path):
  ft = str(tmp_path / "ft")
  out = run_cli("train", f"--finetune_from={trained}", f"--workdir={ft}").stdout
  assert "Fine-tuning from" in out and "Initialised from data" not in out
  with open(os.path.join(ft, "config.json")) as f:
    train = json.load(f)["train"]
  assert (train["learning_rate"], train["warmup_steps"], train["num_steps"]) == (2e-5, 0, 2)
  err = run_cli("train", f"--finetune_from={trained}", f"--workdir={ft}",
                f"--config={DF_CONFIG}", check=False)
  assert err.returncode == 2 and "drop --config" in err.stderr
