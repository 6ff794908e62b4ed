"""The trainer: resume after a kill, checkpointed ActNorm init, NaN handling, XLA,
mixed precision and openai/glow's CIFAR-10 setting."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from gflow.train import Trainer, TrainingDiverged
from gflow.train.checkpoint import model_variables
from gflow.train.graph_options import LightStep
from gflow.train.trainer import build_model, trainable_keyed
from tests.conftest import CONFIG, REPO, TINY
from tests.helpers.kill import checkpoint_values as _checkpoint_values
from tests.helpers.kill import kill_then_resume


def _train_cmd(workdir, steps):
  return [sys.executable, "-m", "gflow.cli.train", f"--config={CONFIG}:digits",
          f"--workdir={workdir}", *TINY, f"--config.train.num_steps={steps}",
          "--config.train.checkpoint_every=10", "--config.train.eval_every=100000",
          "--config.train.sample_every=100000", "--config.train.ema_decay=0.99",
          "--config.train.jit_compile=False"]  # as on CPUs by default (gflow.train.xla_choice)


def test_resume_after_kill_reproduces_the_uninterrupted_run(tmp_path):
  steps = 120
  full, killed = tmp_path / "full", tmp_path / "killed"
  subprocess.run(_train_cmd(full, steps), cwd=REPO, check=True, capture_output=True)
  killed_at, _, _ = kill_then_resume(_train_cmd(killed, steps), killed, kill_after=50)
  assert killed_at < steps
  path_a, a = _checkpoint_values(str(full / "checkpoints"))
  path_b, b = _checkpoint_values(str(killed / "checkpoints"))
  assert path_a.endswith(f"-{steps}") and path_b.endswith(f"-{steps}")
  assert a.keys() == b.keys() and any("optimizer" in k for k in a)
  for k in a:  # weights, optimizer slots, EMA and step
    np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_reload_does_not_rerun_actnorm_init(tmp_path, tiny_config):
  tiny_config.train.num_steps = 5
  first = Trainer(tiny_config, str(tmp_path))
  first.train()
  trained = {v.path: v.numpy() for v in first.model.variables if "act_norm" in v.path}
  second = Trainer(tiny_config, str(tmp_path))
  assert not second.model.is_initialized()
  second.restore()
  assert second.model.is_initialized()  # the flag itself is checkpointed
  second.train()  # nothing left to train; init must not run again
  for v in second.model.variables:
    if v.path in trained:
      np.testing.assert_array_equal(v.numpy(), trained[v.path], err_msg=v.path)


def test_checkpoint_and_gflow_load_hold_every_model_variable(tmp_path, tiny_config):
  import gflow
  tiny_config.train.num_steps = 4
  t = Trainer(tiny_config, str(tmp_path), verbose=False)
  t.train()
  _, saved = _checkpoint_values(str(tmp_path / "checkpoints"))
  keyed = model_variables(t.model.layer)
  assert sum(k.startswith("model/") for k in saved) == len(keyed) == len(t.model.variables)
  for key, v in keyed.items():
    escaped = key.replace(".", "..")
    np.testing.assert_array_equal(saved[f"model/{escaped}/.ATTRIBUTES/VARIABLE_VALUE"],
                                  v.numpy(), err_msg=key)
  x = tf.constant(t.data.test[:3], tf.float32) + 0.5
  raw = gflow.load(str(tmp_path), use_ema=False)
  assert raw.is_initialized()
  np.testing.assert_allclose(raw.log_prob(x), t.model.log_prob(x), rtol=1e-6)
  averaged = gflow.load(str(tmp_path))  # the EMA weights, as evaluation uses
  with t.ema.swapped():
    np.testing.assert_allclose(averaged.log_prob(x), t.model.log_prob(x), rtol=1e-6)


def test_nan_loss_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path, tiny_config):
  c = tiny_config
  c.train.num_steps, c.train.checkpoint_every = 200, 1
  c.train.learning_rate, c.train.warmup_steps, c.train.grad_clip_norm = 1e5, 0, 0.0
  trainer = Trainer(c, str(tmp_path))
  with pytest.raises(TrainingDiverged, match=r"(Loss is (nan|inf)|A gradient is NaN or Inf "
                     r"\(loss [\d.]+\)) at step (\d+): stopped before applying the update, "
                     r"without saving\. The last good checkpoint is .*ckpt-\d+") as info:
    trainer.train()
  failed_at = int(str(info.value).split(" at step ")[1].split(":")[0])
  path, values = _checkpoint_values(str(tmp_path / "checkpoints"))
  assert path.endswith(f"ckpt-{failed_at - 1}") and failed_at > 1
  assert all(np.all(np.isfinite(v)) for v in values.values() if v.dtype.kind == "f")
  # The failed update was not applied: the weights in memory are the checkpoint's.
  for key, v in model_variables(trainer.model.layer).items():
    escaped = key.replace(".", "..")
    np.testing.assert_array_equal(values[f"model/{escaped}/.ATTRIBUTES/VARIABLE_VALUE"],
                                  v.numpy(), err_msg=key)


def _scaled_gradient(factor):
  @tf.custom_gradient
  def identity(x):
    """Identity whose gradient is `factor` times the true one."""
    return tf.identity(x), lambda dy: dy * factor
  return identity


# an infinite gradient; or finite gradients whose global norm overflows float32, which
# clipping turns into NaN (so the check must look at the clipped gradients)
@pytest.mark.parametrize("factor,clip", [(float("inf"), 0.0), (1e30, 1.0)])
def test_overflowing_gradient_with_a_finite_loss_is_not_applied(tmp_path, tiny_config, factor,
                                                                clip):
  c = tiny_config
  c.train.num_steps, c.train.checkpoint_every, c.train.ema_decay = 10, 1, 0.9
  c.train.grad_clip_norm = clip
  trainer = Trainer(c, str(tmp_path), verbose=False)
  loss = trainer.model.loss
  scaled = _scaled_gradient(factor)

  def loss_overflowing_at_step_3(batch, seed, training=False):
    per_example = loss(batch, seed, training)
    return tf.cond(tf.equal(trainer.step, 2), lambda: scaled(per_example),
                   lambda: per_example)
  trainer.model.loss = loss_overflowing_at_step_3
  with pytest.raises(TrainingDiverged, match=r"A gradient is NaN or Inf \(loss \d+\.\d+\) "
                     r"at step 3: stopped before applying the update.*ckpt-2"):
    trainer.train()
  _, values = _checkpoint_values(str(tmp_path / "checkpoints"))
  assert int(trainer.optimizer.iterations.numpy()) == 2
  assert int(trainer.ema.updates.numpy()) == 2
  for key, v in model_variables(trainer.model.layer).items():
    escaped = key.replace(".", "..")
    np.testing.assert_array_equal(values[f"model/{escaped}/.ATTRIBUTES/VARIABLE_VALUE"],
                                  v.numpy(), err_msg=key)


def test_nan_loss_from_the_command_line_exits_1_with_the_message(tmp_path):
  proc = subprocess.run(
      [*_train_cmd(tmp_path, 200), "--config.train.learning_rate=1e5",
       "--config.train.warmup_steps=0", "--config.train.grad_clip_norm=0",
       "--config.train.jit_compile=False"],
      cwd=REPO, capture_output=True, text=True)
  assert proc.returncode == 1
  assert "stopped before applying the update" in proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and "Traceback" not in proc.stderr


def _initial_and_final(config, workdir):
  """Trains `config`; returns (values after the data-dependent init, every value of the
  final checkpoint: weights, optimizer slots, EMA, step)."""
  t = Trainer(config, workdir, verbose=False)
  t.initialize()
  initial = {k: v.numpy().copy() for k, v in trainable_keyed(t.model).items()}
  t.train()
  return initial, _checkpoint_values(os.path.join(workdir, "checkpoints"))[1]


def assert_moved_far(initial, final, tolerance, factor=20):
  """Positive control: training moved the trainable weights (`initial`) far beyond the
  tolerance the comparison uses, so agreeing runs really agree."""
  moved = []
  for key, before in initial.items():
    after = final[f"model/{key.replace('.', '..')}/.ATTRIBUTES/VARIABLE_VALUE"]
    if before.dtype.kind == "f" and before.size > 1:
      moved.append(np.max(np.abs(after - before)) > factor * tolerance)
  assert np.mean(moved) > 0.9, f"only {np.mean(moved):.0%} of the variables moved far"


def assert_trains_alike(config, workdir, first, second, rtol, atol, zero_gradient=()):
  """Trains `config` with the train fields of `first`, then of `second` (dicts), and
  asserts every value of the final checkpoints (weights, optimizer slots, EMA, step)
  agrees, after the positive control that the first run moved its weights far beyond
  `atol`.

  `zero_gradient`: parts of the names of variables whose gradient is zero in exact
  arithmetic (a bias added right before a BatchNorm, which subtracts it again). Their
  computed gradient is rounding error, which an Adam-type optimizer scales into steps
  of either sign, different for two ways of computing the same thing: for those only
  their values are checked, staying within `learning_rate` of their start per step."""
  results = []
  for i, fields in enumerate((first, second)):
    config.train.update(fields)
    results.append(_initial_and_final(config, os.path.join(str(workdir), str(i))))
  (initial, one), (_, two) = results
  assert_moved_far(initial, one, tolerance=atol)
  assert one.keys() == two.keys()
  bound = config.train.learning_rate * config.train.num_steps
  for k in one:
    if any(name in k for name in zero_gradient) and one[k].dtype.kind == "f":
      for run in (one, two):
        assert np.max(np.abs(run[k])) <= bound, (k, np.max(np.abs(run[k])), bound)
      continue
    np.testing.assert_allclose(two[k], one[k], rtol=rtol, atol=atol, err_msg=k)
  return one


def test_xla_step_on_cpu_matches_the_graph_step(tmp_path, tiny_config):
  c = tiny_config
  c.train.num_steps, c.train.warmup_steps, c.train.learning_rate = 4, 0, 5e-3
  c.train.grad_clip_norm, c.train.ema_decay = 0.0, 0.9  # unclipped; EMA compared too
  graph = assert_trains_alike(c, tmp_path, dict(jit_compile=False), dict(jit_compile=True),
                              rtol=1e-3, atol=1e-4)
  assert any(k.startswith("optimizer/") for k in graph) and any(k.startswith("ema/") for k in graph)


def test_light_step_graph_trains_what_the_full_one_trains(tmp_path, tiny_config):
  """`train.step_graph` (Grappler's passes for the step's own graph; "auto" is light
  with shared traces) changes the start-up, not what is learned."""
  c = tiny_config
  c.train.num_steps, c.train.warmup_steps, c.train.learning_rate = 4, 0, 5e-3
  c.train.jit_compile, c.train.shared_traces = False, True
  assert_trains_alike(c, tmp_path, dict(step_graph="full"), dict(step_graph="auto"),
                      rtol=1e-4, atol=1e-5)
  # "auto" was light here, and is full without shared traces
  for shared, light_step in ((True, True), (False, False)):
    c.train.shared_traces = shared
    t = Trainer(c, str(tmp_path / f"kind{shared}"), verbose=False)
    assert isinstance(t._make_train_step(), LightStep) == light_step


def test_mixed_bfloat16_networks_train_with_float32_log_dets(tmp_path, tiny_config):
  tiny_config.model.network_dtype = "mixed_bfloat16"
  tiny_config.train.num_steps = 3
  t = Trainer(tiny_config, str(tmp_path), verbose=False)
  bpd, _ = t.train()["bits/dim"]
  assert np.isfinite(bpd)
  assert all(v.dtype == "float32" for v in t.model.trainable_variables)
  x = tf.constant(t.data.test[:2], tf.float32)
  assert t.model.log_prob(x).dtype == tf.float32


def test_every_trainable_variable_gets_a_gradient(tmp_path, tiny_config):
  t = Trainer(tiny_config, str(tmp_path), verbose=False)
  x = tf.constant(t.data.train[:8], tf.float32) + 0.5
  t.model.initialize(x)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(t.model.bits_per_dim(x))
  grads = tape.gradient(loss, t.model.trainable_variables)
  assert len(grads) == len(t.model.layer.trainable_weights) > 0
  missing = [v.path for v, g in zip(t.model.trainable_variables, grads) if g is None]
  assert not missing


def test_mixed_float16_trains_with_loss_scaling(tmp_path, tiny_config):
  import keras
  tiny_config.model.network_dtype = "mixed_float16"
  tiny_config.train.num_steps = 3
  t = Trainer(tiny_config, str(tmp_path), verbose=False)
  assert isinstance(t.optimizer, keras.optimizers.LossScaleOptimizer)
  assert np.isfinite(t.train()["bits/dim"][0])


def _cifar10_on_stand_in_data(tmp_path):
  """openai/glow's CIFAR-10 config (3 levels × 32 steps, width 512) on 8 random images."""
  sys.path.insert(0, os.path.join(REPO, "configs"))
  import glow as glow_configs
  sys.path.pop(0)
  c = glow_configs.get_config("cifar10")
  c.unlock()
  rng = np.random.RandomState(0)
  np.savez(tmp_path / "cifar_like.npz", train=rng.randint(0, 256, (8, 32, 32, 3), np.uint8),
           test=rng.randint(0, 256, (2, 32, 32, 3), np.uint8))
  c.data.name, c.data.path = "npz", str(tmp_path / "cifar_like.npz")
  c.train.batch_size, c.train.init_batch_size, c.train.num_steps = 2, 4, 1
  c.train.jit_compile = False  # XLA is covered on the small model; keep CPU time bounded
  c.eval.batch_size, c.eval.num_samples = 2, 2
  return c


def test_cifar10_config_builds_openai_glows_model(tmp_path):
  c = _cifar10_on_stand_in_data(tmp_path)
  assert (c.model.levels, c.model.steps, c.model.width) == (3, 32, 512)
  assert c.train.optimizer == "adamax" and c.train.learning_rate == 1e-3
  with pytest.raises(ValueError, match=r"config.data.num_train is 50000 but npz:.* has 8 "
                     r"training examples.*--config.data.num_train=8"):
    Trainer(c, str(tmp_path / "mismatch"), verbose=False)
  c.data.num_train = 8
  t = Trainer(c, str(tmp_path / "run"), verbose=False)
  params = sum(int(np.prod(v.shape)) for v in t.model.trainable_variables)
  assert 40e6 < params < 50e6  # openai/glow's CIFAR-10 model has ~44 M


@pytest.mark.slow
def test_cifar10_config_runs_one_step(tmp_path):
  c = _cifar10_on_stand_in_data(tmp_path)
  c.data.num_train = 8
  t = Trainer(c, str(tmp_path / "run"), verbose=False)
  assert np.isfinite(t.train()["bits/dim"][0])


def test_checkpoint_keys_do_not_depend_on_how_many_layers_the_process_built(tiny_config):
  first = model_variables(build_model(tiny_config, (8, 8, 1)).layer)
  second = model_variables(build_model(tiny_config, (8, 8, 1)).layer)
  assert list(first) == list(second)
  assert [v.path for v in first.values()] != [v.path for v in second.values()]  # Keras renames
  assert "flow_layers.3.inner.flow_layers.1.flow_layers.2.network.conv1.kernel" in first


def test_a_mismatched_or_old_checkpoint_is_refused_by_name(tmp_path, tiny_config):
  from gflow.train.checkpoint import CheckpointMismatch, check_model_entries
  tiny_config.train.num_steps = 1
  Trainer(tiny_config, str(tmp_path / "run"), verbose=False).train()
  tiny_config.model.steps = 3  # one more step of flow per level
  with pytest.raises(CheckpointMismatch, match=r"does not match the model built from the "
                     r"config.*missing from the checkpoint \['flow_layers.3.flow_layers.0.initialized'"):
    Trainer(tiny_config, str(tmp_path / "run"), verbose=False).restore()
  # A checkpoint keyed by position (gflow before path keys) is named as such.
  model = build_model(tiny_config, (8, 8, 1))
  old = tf.train.Checkpoint(model=[v.value for v in model.layer.variables])
  path = old.save(str(tmp_path / "old" / "ckpt"))
  with pytest.raises(CheckpointMismatch, match="older gflow that keyed model variables by "
                     "position"):
    check_model_entries(path, model_variables(model.layer))


def test_swapping_two_same_shaped_variables_by_a_refactor_is_caught(tmp_path, tiny_config):
  """Renaming the attribute that holds a sub-layer changes its key: restoring fails
  loudly instead of pairing same-shaped variables by position."""
  from gflow.train.checkpoint import CheckpointMismatch, check_model_entries, trackable
  model = build_model(tiny_config, (8, 8, 1))
  entries = model_variables(model.layer)
  path = tf.train.Checkpoint(model=trackable(entries)).save(str(tmp_path / "ckpt"))
  coupling = model.layer.flow_layers[1].flow_layers[2]
  coupling.net = coupling.network  # a refactor: the network moves to another attribute
  del coupling.network
  with pytest.raises(CheckpointMismatch, match=r"network.conv1.kernel"):
    check_model_entries(path, model_variables(model.layer))
