"""WaveFlow: causality along the height, the permutation schedule, the paper's parameter
counts, and a tiny model that learns on generated speech-like audio through gflow-train."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import gflow
from gflow import examples
from gflow import layers as gl
from gflow import nets
from gflow.bijectors.permute_rows import waveflow_permutations
from gflow.io import write_wav
from gflow.train.trainer import build_model
from tests.conftest import REPO, run_cli
from tests.helpers.kill import checkpoint_values, kill_then_resume

WF_CONFIG = os.path.join(REPO, "configs", "waveflow.py")


def waveflow_config(arg="ljspeech_64"):
  sys.path.insert(0, os.path.join(REPO, "configs"))
  try:
    import waveflow
  finally:
    sys.path.pop(0)
  return waveflow.get_config(arg)


@pytest.mark.parametrize("height,dilations", [(8, (1, 1, 1)), (32, (1, 2, 4, 1, 2))])
def test_latent_row_i_depends_on_no_input_row_after_it(height, dilations):
  net = nets.WaveNet2D(4, conditioning_channels=2, layers=len(dilations),
                       height_dilations=dilations)
  net.build((None, height, 5, 1))
  examples.randomize(net, scale=0.3)
  layer = gl.RowAutoregressiveLayer(net)
  layer.build((None, height, 5, 1))
  x = tf.random.stateless_normal([2, height, 5, 1], [0, 1])
  cond = tf.random.stateless_normal([2, height, 5, 2], [0, 2])
  z, _ = layer.forward_and_log_det(x, 3, conditioning=cond)
  log_s, _ = layer.bijector(cond)._params(x)
  for i in (0, 1, height // 2, height - 1):
    bumped = tf.tensor_scatter_nd_add(x, [[0, i, 2, 0]], [1.0])
    z2, _ = layer.forward_and_log_det(bumped, 3, conditioning=cond)
    diff = (z2 - z).numpy()[0, :, :, 0]
    assert np.all(diff[:i] == 0), (i, diff)  # rows above are untouched
    # Row i moves by exactly s_i at the bumped sample and nowhere else: its scale and
    # shift depend on the rows above only, not on row i itself.
    expected = np.zeros_like(diff[i])
    expected[2] = np.exp(log_s[0, i, 2, 0])
    np.testing.assert_allclose(diff[i], expected, rtol=1e-4, atol=1e-5)


def test_permutation_schedule_and_the_conditioning_each_flow_sees():
  perms = waveflow_permutations(8, 4)
  assert [p.tolist() for p in perms[:2]] == [[7, 6, 5, 4, 3, 2, 1, 0]] * 2
  assert [p.tolist() for p in perms[2:]] == [[3, 2, 1, 0, 7, 6, 5, 4]] * 2
  from gflow_waveflow import build_waveflow_stack
  stack = build_waveflow_stack(4, 8, channels=4, n_mels=2, layers=2)
  stack.build((None, 8, 3, 1))
  rows = tf.reshape(tf.range(8, dtype=tf.float32), [1, 8, 1, 1]) * tf.ones([1, 8, 3, 1])
  for layer in stack.flow_layers:  # follow the rows through the permutations
    if isinstance(layer, gl.RowAutoregressiveLayer):
      np.testing.assert_array_equal(rows[0, :, 0, 0].numpy(), layer.conditioning_rows)
    else:
      rows = layer.bijector().forward(rows)
      back = layer.bijector().inverse(tf.identity(rows))
      assert sorted(back[0, :, 0, 0].numpy().tolist()) == list(range(8))


@pytest.mark.parametrize("arg,paper", [("ljspeech_64", 5.91e6), ("ljspeech_128", 22.25e6)])
def test_parameter_counts_of_the_paper(arg, paper):
  c = waveflow_config(arg)
  count = sum(int(np.prod(v.shape)) for v in build_model(c, (16000,)).trainable_variables)
  assert abs(count - paper) / paper < 0.01, count
  c.model.weight_norm = False  # NanoFlow's README: 5.925 M / 22.336 M without weight norm
  plain = sum(int(np.prod(v.shape)) for v in build_model(c, (16000,)).trainable_variables)
  assert abs(plain - {"ljspeech_64": 5.925e6, "ljspeech_128": 22.336e6}[arg]) < 2e3, plain


def test_gflow_info_prints_the_audio_examples_and_the_parameter_count():
  out = run_cli("info", f"--config={WF_CONFIG}:ljspeech_64").stdout
  assert out.splitlines()[0] == (
      "waveflow (WaveFlow) for ljspeech audio: 16,000-sample segments, 80-band log-mel "
      "conditioning (22,050 Hz, n_fft 1024, hop 256)")
  assert re.search(r"^    flow_0 \(RowAutoregressiveLayer\): 743,746 parameters$", out, re.M)
  assert "parameters: 5,950,162" in out.splitlines()


def test_a_mel_shorter_than_the_waveform_is_refused():
  c = waveflow_config("speech8k")
  c.model.update(dict(num_flows=2, channels=4, layers=2))
  model = build_model(c, (512,))
  with pytest.raises(tf.errors.InvalidArgumentError, match="fewer frames than the waveform"):
    model.loss({"x": tf.zeros([1, 512]), "conditioning": tf.zeros([1, 4, 40])}, None)
  with pytest.raises(ValueError, match="expects 40 mel bands"):
    model.loss({"x": tf.zeros([1, 512]), "conditioning": tf.zeros([1, 8, 80])}, None)


def _speechy_folder(path, n=12, rate=8000, seconds=0.3):
  """Harmonic tones with a moving pitch and a syllable-like envelope, plus noise."""
  rng = np.random.RandomState(0)
  t = np.arange(int(rate * seconds)) / rate
  os.makedirs(path, exist_ok=True)
  for i in range(n):
    f0 = rng.uniform(90, 220) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 6))
    wave *= np.sin(np.pi * t / seconds) ** 2 * rng.uniform(0.2, 0.5)
    write_wav(os.path.join(path, f"s{i:02d}.wav"), wave + 0.005 * rng.randn(len(t)), rate)
  return path


TINY_WF = ["--config.model.num_flows=2", "--config.model.channels=8", "--config.model.layers=3",
           "--config.data.segment_length=512", "--config.train.batch_size=4",
           "--config.train.learning_rate=2e-3", "--config.train.log_every=20",
           "--config.train.checkpoint_every=1000", "--config.train.eval_every=100000",
           "--config.train.sample_every=100000", "--config.eval.num_samples=1",
           "--config.train.jit_compile=false"]


def _tiny_train_cmd(folder, workdir, *extra):
  return [sys.executable, "-m", "gflow.cli.train", f"--config={WF_CONFIG}:speech8k",
          f"--workdir={workdir}", f"--config.data.path={folder}",
          "--config.train.num_steps=100", *TINY_WF, *extra]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """A tiny WaveFlow trained 100 steps on speech-like tones: (folder, workdir, stdout)."""
  tmp = tmp_path_factory.mktemp("tiny_waveflow")
  folder = _speechy_folder(str(tmp / "wavs"), n=20)  # 2 test clips
  workdir = tmp / "run"
  out = subprocess.run(_tiny_train_cmd(folder, workdir), cwd=REPO, check=True,
                       capture_output=True, text=True).stdout
  return folder, workdir, out


def test_a_tiny_waveflow_learns_and_is_evaluated_and_sampled(tmp_path, tiny_run):
  folder, workdir, out = tiny_run
  losses = [float(v) for v in re.findall(r"\| loss \(nats/sample\) ([-\d.]+) \|", out)]
  assert len(losses) == 5 and losses[-1] < losses[0] - 0.5, out
  final = re.findall(r"^test log-likelihood: ([-\d.]+) ± [\d.]+ nats/sample$", out, re.M)
  assert len(final) == 1, out
  baseline = re.findall(r"^Gaussian baseline log-likelihood: ([-\d.]+) ± [\d.]+ nats/sample "
                        r"\(N\(μ=.*, σ=.*\) fitted to [\d,]+ training samples\)$", out, re.M)
  assert len(baseline) == 1 and float(final[0]) > float(baseline[0]) + 0.5, out
  evaluated = run_cli("evaluate", f"--workdir={workdir}").stdout
  assert f"test log-likelihood: {final[0]} ± " in evaluated
  assert f"Gaussian baseline log-likelihood: {baseline[0]} ± " in evaluated
  sampled = run_cli("sample", f"--workdir={workdir}", "--num_samples=1", "--temperature=0.8",
                    f"--out={tmp_path / 'synth'}").stdout
  wave, rate = gflow.io.read_wav(str(tmp_path / "synth_000.wav"))
  assert "1 samples at temperature 0.8" in sampled and "× real time" in sampled
  assert rate == 8000 and len(wave) > 0 and np.all(np.abs(wave) <= 1)
  source = os.path.join(folder, "s03.wav")
  resynth = run_cli("sample", f"--workdir={workdir}", f"--wav={source}",
                    f"--out={tmp_path / 'resynth'}").stdout
  assert "1 samples" in resynth
  assert len(gflow.io.read_wav(str(tmp_path / "resynth_000.wav"))[0]) == 2400  # 0.3 s
  np.save(tmp_path / "mel.npy", np.zeros((2, 5, 40), np.float32))
  from_mel = run_cli("sample", f"--workdir={workdir}", f"--mel={tmp_path / 'mel.npy'}",
                     f"--out={tmp_path / 'from_mel'}").stdout
  assert "2 samples" in from_mel
  assert len(gflow.io.read_wav(str(tmp_path / "from_mel_001.wav"))[0]) == 5 * 64


def test_resume_after_a_kill_ends_with_the_uninterrupted_weights(tmp_path, tiny_run):
  folder, full, _ = tiny_run
  killed = tmp_path / "killed"
  cmd = _tiny_train_cmd(folder, killed, "--config.train.checkpoint_every=20")
  killed_at, at_kill, _ = kill_then_resume(cmd, killed, kill_after=40)
  assert killed_at < 100
  path_a, a = checkpoint_values(str(full / "checkpoints"))
  path_b, b = checkpoint_values(str(killed / "checkpoints"))
  assert path_a.endswith("-100") and path_b.endswith("-100")
  assert a.keys() == b.keys() and any("optimizer" in k for k in a)
  moved = max(float(np.max(np.abs(a[k] - at_kill[k]))) for k in a if "optimizer" not in k)
  assert moved > 1e-2  # training after the kill moved the weights far beyond the tolerance
  for k in a:  # weights, optimizer slots and step (not how many saves it took)
    if k.startswith("save_counter"):
      continue
    np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("height", [8, 32, 64])
def test_cached_synthesis_equals_the_uncached_inverse(height):
  """The row cache must be exact for height dilations > 1 (h = 32, 64)."""
  dilations = nets.HEIGHT_DILATIONS[height]
  net = nets.WaveNet2D(4, conditioning_channels=2, layers=8, height_dilations=dilations)
  net.build((None, height, 6, 1))
  examples.randomize(net, scale=0.2, seed=height)
  layer = gl.RowAutoregressiveLayer(net, conditioning_rows=np.arange(height)[::-1])
  layer.build((None, height, 6, 1))
  z = tf.random.stateless_normal([2, height, 6, 1], [1, height])
  cond = tf.random.stateless_normal([2, height, 6, 2], [2, height])
  cached = tf.function(layer.synthesize)(tf.identity(z), cond)
  reference = layer.bijector(cond).inverse(tf.identity(z))
  np.testing.assert_allclose(cached, reference, rtol=1e-4, atol=1e-4)
  # and it inverts the flow: forward of the synthesised rows gives z back
  z_again, _ = layer.forward_and_log_det(tf.constant(cached.numpy()), 3, conditioning=cond)
  np.testing.assert_allclose(z_again, z, rtol=1e-4, atol=1e-4)


def test_xla_step_with_bfloat16_networks_keeps_float32_log_dets(tmp_path):
  from gflow.train import Trainer
  c = waveflow_config("speech8k")
  c.data.path = _speechy_folder(str(tmp_path / "wavs"), n=6)
  c.data.segment_length = 256
  c.model.update(dict(num_flows=2, channels=8, layers=2, network_dtype="mixed_bfloat16"))
  c.train.update(dict(batch_size=2, num_steps=2, jit_compile=True, log_every=1))
  c.eval.num_samples = 1
  t = Trainer(c, str(tmp_path / "run"), verbose=False)
  batch = {"x": tf.zeros([1, 256]) + 0.1, "conditioning": tf.zeros([1, 4, 40])}
  assert t.model.loss(batch, None).dtype == tf.float32
  assert all(v.dtype == "float32" for v in t.model.trainable_variables)
  assert np.isfinite(t.train()["log-likelihood"][0])


@pytest.mark.slow  # 33 s; Glow and DenseFlow's 2-replica tests run by default
def test_two_logical_cpu_replicas_equal_one(tmp_path):
  """A tiny WaveFlow under MirroredStrategy on 2 logical CPUs ends with the weights,
  optimizer slots and EMA of 1 replica at the same global batch."""
  from tests.test_distributed import _assert_same_weights, _load, _train
  folder = _speechy_folder(str(tmp_path / "wavs"), n=8)
  args = [f"--config={WF_CONFIG}:speech8k", f"--config.data.path={folder}", *TINY_WF,
          "--config.train.num_steps=6", "--config.train.ema_decay=0.9",
          "--config.train.learning_rate=2e-3", "--config.data.segment_length=256"]
  one = _load(_train(tmp_path, "one", args=args)[0])
  two = _load(_train(tmp_path, "two", "mirrored", cpus=2, args=args)[0])
  _assert_same_weights(one, two, 2, actnorm=False)
