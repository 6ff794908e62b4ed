"""2 replicas (MirroredStrategy on 2 logical CPUs) and 2 worker processes
(MultiWorkerMirroredStrategy on loopback) give the same weights, optimizer slots
and EMA as 1 replica at the same global batch, ActNorm's data-dependent init
included. For DenseFlow this also covers the augmentation and dequantization
noise (each replica draws its rows of the global batch's noise) and BatchNorm
(global-batch statistics). No warm-up and a learning rate that moves the
weights far beyond the tolerance (asserted first), so the comparison can fail;
Glow clips the global gradient norm, DenseFlow (like its paper configs) does not.
Glow runs with NanoFlow's parameter sharing across the model (one body for both
levels, per-flow heads, embeddings and gates), DenseFlow without sharing. NCSNv2's
denoising loss draws each example's noise level and perturbation from the global
batch's noise, so its replicas too must agree."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import CONFIG, REPO
from tests.test_denseflow import DF_CONFIG, TINY_DF

STEPS = 6
COMMON = [f"--config.train.num_steps={STEPS}", "--config.train.checkpoint_every=1000",
          "--config.train.eval_every=1000", "--config.train.sample_every=1000",
          "--config.eval.num_samples=4", "--config.train.grad_clip_norm=0",
          "--config.train.ema_decay=0.9", "--config.train.warmup_steps=0",
          "--config.train.learning_rate=1e-3"]
DENSEFLOW_ARGS = [f"--config={DF_CONFIG}:digits", *TINY_DF, *COMMON]
ARGS = [
    f"--config={CONFIG}:digits", "--config.model.levels=2", "--config.model.steps=2",
    "--config.model.width=16", "--config.train.batch_size=16",
    "--config.model.sharing=nanoflow", "--config.model.share_across=model",
    "--config.model.flow_embedding=input,bias,gate",
    "--config.train.init_batch_size=64", f"--config.train.num_steps={STEPS}",
    "--config.train.checkpoint_every=1000", "--config.train.eval_every=1000",
    "--config.train.sample_every=1000", "--config.eval.num_samples=4",
    "--config.train.grad_clip_norm=1.0",  # clipping uses the global gradient
    "--config.train.ema_decay=0.9", "--config.train.warmup_steps=0",
    "--config.train.learning_rate=1e-3",
]


NCSNV2_ARGS = [f"--config={os.path.join(REPO, 'configs', 'ncsnv2.py')}:digits",
               "--config.model.ngf=8", "--config.train.batch_size=16",
               "--config.model.eval_levels=1", "--config.model.sampling.steps=1", *COMMON]
# DenseFlow with BatchNorm over virtual batches of 4 (not synchronized): the replicas
# keep XLA (asserted) and still equal one replica.
VIRTUAL_BN_ARGS = [*DENSEFLOW_ARGS, "--config.model.virtual_batch_size=4",
                   "--config.train.jit_compile=True"]
MODELS = {"glow": ARGS, "denseflow": DENSEFLOW_ARGS, "ncsnv2": NCSNV2_ARGS,
          "denseflow_virtual_bn": VIRTUAL_BN_ARGS,
          # without XLA: the replicas share their modules' traces (-m slow)
          "denseflow_virtual_bn_graph": [*VIRTUAL_BN_ARGS, "--config.train.jit_compile=False"],
          # XLA compiling each shared module (recomputed) on each replica's device
          "denseflow_virtual_bn_modules": [*VIRTUAL_BN_ARGS, "--config.train.jit_scope=modules",
                                           "--config.train.remat=True"]}
COMPILED = {"denseflow_virtual_bn", "denseflow_virtual_bn_modules"}  # XLA stays on


def _train(tmp_path, name, strategy="default", cpus=1, env=None, wait=True, args=ARGS):
  out = tmp_path / f"{name}.npz"
  cmd = [sys.executable, "-m", "tests.helpers.train_worker", *args,
         f"--workdir={tmp_path / name}", f"--out={out}", f"--strategy={strategy}",
         f"--logical_cpus={cpus}"]
  proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, **(env or {})),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  if wait:
    _finish(proc)
  return out, proc


def _finish(proc, timeout=600):
  stdout, stderr = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, f"worker failed:\n{stdout}\n{stderr[-5000:]}"


def _load(path):
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


RTOL, ATOL = 2e-4, 2e-5
COLLECTIVE_LIMIT = 240  # s a worker may wait for a dead peer before it must have ended


def _assert_same_weights(a, b, replicas, actnorm=True, xla=None):
  assert int(b.pop("replicas")) == replicas and int(a.pop("replicas")) == 1
  compiled = int(a.pop("xla")), int(b.pop("xla"))  # did XLA compile the 1- and 2-replica steps
  assert xla is None or compiled == (int(xla), int(xla)), compiled
  assert a.keys() == b.keys()
  initial = {k[len("initial/"):]: v for k, v in a.items() if k.startswith("initial/")}
  assert not actnorm or any("shift" in k for k in initial), "ActNorm variables expected"
  moved = [np.max(np.abs(a[f"model/{k.replace('.', '..')}/.ATTRIBUTES/VARIABLE_VALUE"] - v))
           > 100 * ATOL for k, v in initial.items()]
  assert np.mean(moved) > 0.9, f"only {np.mean(moved):.0%} of the variables moved far"
  assert any(k.startswith("optimizer/") for k in a) and any(k.startswith("ema/") for k in a)
  noise = [k for k in a if _zero_gradient(k)]
  assert len(noise) < len(a) / 10, noise
  for k in a:  # initial (data-dependent init) and final weights, optimizer slots, EMA
    if k in noise:  # rounding noise in both runs: it only has to stay noise
      assert np.max(np.abs(a[k])) < 1e-3 and np.max(np.abs(b[k])) < 1e-3, k
    else:
      np.testing.assert_allclose(b[k], a[k], rtol=RTOL, atol=ATOL, err_msg=k)


def _zero_gradient(key):
  """DenseFlow's attention output bias (and its EMA) feeds BatchNorm in training mode,
  which removes any constant per channel: its gradient is zero in exact arithmetic and
  float32 rounding noise (~1e-9) in practice, which Adamax's m / (u + 1e-7) turns into
  steps of ~lr * g / 1e-7. Its value is then noise that differs with the order of any
  sum, between 1 and 2 replicas as between two orders of one reduction. (Its Adamax
  slots are ~1e-9 and compared as usual.)"""
  return "attend..proj..bias" in key


@pytest.fixture(scope="module", params=list(MODELS))
def single(request, tmp_path_factory):
  tmp = tmp_path_factory.mktemp("single")
  return request.param, _load(_train(tmp, "one", args=MODELS[request.param])[0])


def test_two_logical_cpu_replicas_equal_one(single, tmp_path):
  model, weights = single
  two = _load(_train(tmp_path, "mirrored", "mirrored", cpus=2, args=MODELS[model])[0])
  _assert_same_weights(dict(weights), two, 2, actnorm=model != "ncsnv2",
                       xla=model in COMPILED or None)


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def test_two_worker_processes_equal_one(single, tmp_path):
  workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
  procs = []
  for i in range(2):
    tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
    procs.append(_train(tmp_path, f"worker{i}", "multi_worker", args=MODELS[single[0]],
                        env={"TF_CONFIG": json.dumps(tf_config)}, wait=False))
  for _, proc in procs:
    _finish(proc)
  two = _load(procs[0][0])  # the chief (worker 0) writes the weights
  assert not procs[1][0].exists()
  _assert_same_weights(dict(single[1]), two, 2, actnorm=single[0] != "ncsnv2",
                       xla=single[0] in COMPILED or None)


def test_a_killed_worker_ends_the_run_and_both_resume_to_the_uninterrupted_weights(tmp_path):
  """2 MultiWorkerMirroredStrategy workers sharing a workdir: SIGKILL worker 1 after a
  checkpoint; worker 0 must end (not hang); the same two commands resume from the last
  checkpoint and end with the weights, slots and EMA of an uninterrupted 1-process run."""
  import signal
  import time

  from tests.helpers.kill import checkpoint_values
  steps = 40
  args = [a for a in ARGS if not a.startswith(("--config.train.num_steps",
                                                "--config.train.checkpoint_every"))]
  args += [f"--config.train.num_steps={steps}", "--config.train.checkpoint_every=5"]

  def command(workdir, strategy):
    return [sys.executable, "-m", "gflow.cli.train", *args, f"--workdir={workdir}",
            f"--strategy={strategy}"]
  subprocess.run(command(tmp_path / "one", "default"), cwd=REPO, check=True,
                 capture_output=True)
  shared = tmp_path / "two"

  def launch():
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for i in range(2):
      tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
      procs.append(subprocess.Popen(
          command(shared, "multi_worker"), cwd=REPO, stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, text=True,
          env=dict(os.environ, TF_CONFIG=json.dumps(tf_config))))
    return procs

  def latest():
    path = tf.train.latest_checkpoint(str(shared / "checkpoints")) if (
        shared / "checkpoints").exists() else None
    return int(path.rsplit("-", 1)[1]) if path else 0

  import tensorflow as tf
  procs = launch()
  deadline = time.time() + 300
  while time.time() < deadline and latest() < 10 and procs[0].poll() is None:
    time.sleep(0.05)
  procs[1].send_signal(signal.SIGKILL)
  procs[1].communicate()
  killed = time.time()
  try:
    _, err = procs[0].communicate(timeout=COLLECTIVE_LIMIT)
  except subprocess.TimeoutExpired:
    procs[0].kill()
    raise AssertionError(f"worker 0 still runs {COLLECTIVE_LIMIT} s after worker 1 died")
  assert procs[0].returncode == 1, "worker 0 finished although worker 1 died"
  assert "a worker of the cluster stopped responding" in err, err[-3000:]
  print(f"worker 0 ended {time.time() - killed:.0f} s after worker 1 was killed")
  killed_at = latest()
  assert 10 <= killed_at < steps
  _, at_kill = checkpoint_values(str(shared / "checkpoints"))
  procs = launch()
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert f"(step {killed_at})" in outs[0][0], outs[0][0]
  _, a = checkpoint_values(str(tmp_path / "one" / "checkpoints"))
  _, b = checkpoint_values(str(shared / "checkpoints"))
  moved = max(float(np.max(np.abs(a[k].astype(np.float64) - at_kill[k]))) for k in a
              if k.startswith("model/") and a[k].dtype != bool)
  assert moved > 100 * ATOL
  for k in a:
    if not k.startswith("save_counter"):
      np.testing.assert_allclose(b[k], a[k], rtol=RTOL, atol=ATOL, err_msg=k)
