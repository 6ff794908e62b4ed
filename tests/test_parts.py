"""Training flows in gradient-isolated parts (gflow.flows.parts, the trainer's schedules):
the local objectives against the model's, gradient isolation, the schedules' order, and
resuming inside a part's phase."""

import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from gflow import Noise
from gflow.flows.parts import FlowParts, run_stages, stages_of
from gflow.train import Trainer
from gflow.train.parts_schedule import Phase, PartsSchedule
from gflow.train.trainer import build_model
from tests.conftest import REPO, TINY, glow_config
from tests.test_denseflow import tiny_config as denseflow_tiny_config
from tests.test_sharing import _config


def _glow(levels=3, steps=2):
  c = glow_config()
  c.model.update(levels=levels, steps=steps, width=8)
  model = build_model(c, (8, 8, 1))
  x = tf.constant(np.random.RandomState(0).randint(0, 256, (4, 8, 8, 1)), tf.int32)
  model.initialize(tf.cast(x, tf.float32) + 0.5)
  return model, {"x": x}


def _seed():
  return Noise(tf.constant([3, 4], tf.int32))


def _denseflow(stack=False):
  """A DenseFlow of 2 blocks (2 units of 2 modules, then 2 units of 1) with cross-unit
  augmentation and a variational dequantizer, initialised on digit-like levels; its
  units' modules stacked with `stack` (then it splits only by block)."""
  c = denseflow_tiny_config()
  c.model.update(units=(2, 2), modules=(2, 1), stack_modules=stack)
  model = build_model(c, (8, 8, 1))
  x = tf.constant(np.random.RandomState(0).randint(0, 256, (4, 8, 8, 1)), tf.int32)
  model.initialize(tf.cast(x, tf.float32) + 0.5)
  return model, {"x": tf.cast(x, tf.float32) + 0.3}


def test_one_part_is_the_models_own_objective_exactly():
  """Equal up to the order of float32 additions (the model sums log-dets level by level,
  the stages one after another): 1e-6 relative, far below one step's change."""
  glow, batch = _glow()
  one = FlowParts(glow.layer, "across_blocks", [])
  (loss,) = glow.part_losses(batch, _seed(), one)
  np.testing.assert_allclose(loss.numpy(), glow.loss(batch, _seed()).numpy(), rtol=1e-6)
  wf = _config("waveflow", "speech8k")
  wf.model.update(num_flows=3, height=8, channels=8, layers=2)
  waveflow = build_model(wf, (512,))
  rng = np.random.RandomState(1)
  audio = {"x": tf.constant(rng.uniform(-0.5, 0.5, (2, 512)), tf.float32),
           "conditioning": tf.constant(rng.randn(2, 8, wf.model.n_mels), tf.float32)}
  (loss,) = waveflow.part_losses(audio, _seed(), waveflow.flow_parts("across_blocks", []))
  np.testing.assert_allclose(loss.numpy(), waveflow.loss(audio, _seed()).numpy(), rtol=1e-6)
  denseflow, batch = _denseflow()  # the single-sample bound, for the same noise draws
  (loss,) = denseflow.part_losses(batch, _seed(), denseflow.flow_parts("across_blocks", []))
  np.testing.assert_allclose(loss.numpy(), denseflow.loss(batch, _seed()).numpy(), rtol=1e-6)
  other = Noise(tf.constant([5, 6], tf.int32))  # the noise matters: another draw differs
  assert np.abs(denseflow.loss(batch, other).numpy() - loss.numpy()).min() > 1e-4


@pytest.mark.parametrize("split,boundaries", [("by_block", "1,2"),
                                              ("across_blocks", "1:1,2:2")])
def test_the_parts_log_dets_sum_to_the_models_and_end_in_its_latent(split, boundaries):
  glow, batch = _glow()
  parts = FlowParts(glow.layer, split, boundaries)
  assert parts.num_parts == 3
  x = glow._dequantization.forward(tf.cast(batch["x"], tf.float32) + 0.5)
  z, ldj = glow.layer.forward_and_log_det(x, 3)
  state, total = (x, ()), 0.
  for r in parts.ranges:
    *state, part_ldj = run_stages(parts.stages[r], state, 3)
    total += part_ldj
  np.testing.assert_allclose(state[0].numpy(), z.numpy(), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(total.numpy(), ldj.numpy(), rtol=1e-6)
  assert np.abs(ldj.numpy()).max() > 1.0  # not trivially zero


@pytest.mark.parametrize("split,boundaries", [("by_block", "1"), ("across_blocks", "1:1,1:2")])
def test_denseflow_parts_log_weights_sum_to_the_bound_and_end_in_its_latent(split, boundaries):
  """Across blocks "1:2" falls between the two units of block 1, so the cross-unit
  augmentation before unit 2 and its g (which sees the block's input, handed on from
  part 1 through part 2) run in part 3; "1:1" cuts inside unit 1."""
  model, batch = _denseflow(stack=split == "by_block")
  parts = model.flow_parts(split, boundaries)
  kinds = [[s.kind for s in parts.stages[r]] for r in parts.ranges]
  if split == "across_blocks":
    assert "augment" in kinds[2] and "augment" not in kinds[0] + kinds[1]
  y = model._uniform.forward(batch["x"])
  noise = _seed().fold(1)  # the flow's noise stream (AugmentedFlow's _FLOW)
  z, log_w = model.flow.forward_and_bound(y, noise)
  state, total = (y, (), ()), 0.
  for r in parts.ranges:
    *state, part_log_w = run_stages(parts.stages[r], state, 3, noise=noise)
    total += part_log_w
  np.testing.assert_allclose(state[0].numpy(), z.numpy(), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(total.numpy(), log_w.numpy(), rtol=1e-6)
  assert np.abs(log_w.numpy()).max() > 1.0


def test_a_parts_loss_has_no_gradient_for_earlier_parts():
  glow, batch = _glow()
  parts = FlowParts(glow.layer, "across_blocks", "1:1,2:1")
  with tf.GradientTape(persistent=True) as tape:
    losses = [tf.reduce_mean(l) for l in glow.part_losses(batch, _seed(), parts)]
  for k in range(3):
    own = tape.gradient(losses[k], parts.variables(k))
    assert sum(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in own) > 0, k
    for j in range(k):
      assert all(g is None for g in tape.gradient(losses[k], parts.variables(j))), (k, j)
  every = [v for k in range(3) for v in parts.variables(k)]
  assert {id(v) for v in every} == {id(v) for v in glow.trainable_variables}
  assert len(every) == len(glow.trainable_variables)


def test_stacked_units_refuse_a_split_inside_them():
  model, _ = _denseflow(stack=True)
  with pytest.raises(ValueError, match="stack_modules=False"):
    model.flow_parts("across_blocks", "1:1")


def test_a_denseflow_parts_loss_has_no_gradient_for_earlier_parts_or_the_dequantizer():
  model, batch = _denseflow()
  parts = model.flow_parts("across_blocks", "1:1,1:2")
  dequantizer = {id(v) for v in model.dequantizer.trainable_weights}
  assert dequantizer <= {id(v) for v in parts.variables(0)}
  g = {id(v) for net in model.flow.flow_layers[1].flow_layers[0].noise_nets
       for v in net.trainable_weights}
  assert g and g <= {id(v) for v in parts.variables(2)}  # the augmentation of part 3
  with tf.GradientTape(persistent=True) as tape:
    losses = [tf.reduce_mean(l) for l in model.part_losses(batch, _seed(), parts,
                                                           training=True)]
  for k in range(3):
    own = tape.gradient(losses[k], parts.variables(k))
    assert all(g is not None for g in own), k
    for j in range(k):
      assert all(g is None for g in tape.gradient(losses[k], parts.variables(j))), (k, j)
  every = [v for k in range(3) for v in parts.variables(k)]
  assert {id(v) for v in every} == {id(v) for v in model.trainable_variables}
  assert len(every) == len(model.trainable_variables)


def test_boundaries_are_checked_against_the_flow():
  glow, _ = _glow()
  for split, text, message in [
      ("by_block", "1:1", "across_blocks"), ("across_blocks", "1", "by_block"),
      ("by_block", "3", "no split"), ("across_blocks", "1:7", "steps 1..2"),
      ("by_block", "4", "no level 4"), ("across_blocks", "2:1,1:1", "increasing")]:
    with pytest.raises(ValueError, match=message):
      FlowParts(glow.layer, split, text)
  names = [s.name for s in stages_of(glow.layer)]
  assert names[0].startswith("map squeeze") and "factor" in names[3]


def test_each_schedule_visits_the_parts_in_its_order():
  def order(schedule):
    return [(a, b, "e2e" if ph.end_to_end else ph.active) for a, b, ph in schedule.segments()]
  assert order(PartsSchedule("sequential", 3, 40, end_to_end_steps=10)) == [
      (1, 10, (0,)), (11, 20, (1,)), (21, 30, (2,)), (31, 40, "e2e")]
  assert order(PartsSchedule("alternating", 2, 50, 10, turn_steps=10)) == [
      (1, 10, (0,)), (11, 20, (1,)), (21, 30, (0,)), (31, 40, (1,)), (41, 50, "e2e")]
  assert order(PartsSchedule("alternating", 3, 6, steps_per_epoch=2)) == [
      (1, 2, (0,)), (3, 4, (1,)), (5, 6, (2,))]
  assert order(PartsSchedule("simultaneous", 2, 5)) == [(1, 5, (0, 1))]
  with pytest.raises(ValueError, match="needs 30 steps"):
    PartsSchedule("sequential", 3, 20, steps_per_part=10)
  assert Phase(False, (1,)).describe(3) == "part 2 of 3"


def _parts_config(tiny_config, schedule, boundaries="1:1,2:1"):
  c = tiny_config
  parts = boundaries.count(",") + 2
  c.parts.update(split="across_blocks", boundaries=boundaries, schedule=schedule,
                 steps_per_part=8, end_to_end_steps=8,
                 learning_rates=",".join(["2e-3"] + ["1e-3"] * (parts - 1)))
  c.train.update(num_steps=8 * parts + 8, checkpoint_every=4, log_every=4, eval_every=1000,
                 sample_every=1000, warmup_steps=0, jit_compile=False, ema_decay=0.9,
                 keep_checkpoints=10)
  return c


def test_sequential_parts_resume_inside_a_phase_to_the_uninterrupted_weights(
    tmp_path, tiny_config, capsys):
  c = _parts_config(tiny_config, "sequential", boundaries="1:1")  # 2 parts
  full = Trainer(c, str(tmp_path / "full"))
  full.train()
  out = capsys.readouterr().out
  assert re.findall(r"^Steps (\d+)–(\d+): (.*) \(sequential\)\.$", out, re.M) == [
      ("1", "8", "part 1 of 2"), ("9", "16", "part 2 of 2"), ("17", "24", "end to end")]
  assert re.search(r"^step +8/24 \| part 1 loss \(bits/dim\) [\d.]+ \|", out, re.M), out
  assert re.search(r"^step 24/24 \| loss \(bits/dim\) [\d.]+ \|", out, re.M), out

  # The run as a kill at step 15 leaves it: the checkpoints up to step 12 (inside part 2).
  shutil.copytree(tmp_path / "full", tmp_path / "resumed")
  for path in (tmp_path / "resumed" / "checkpoints").glob("ckpt-*"):
    if int(path.name.split(".")[0].split("-")[1]) > 12:
      path.unlink()
  at_kill = tf.train.load_checkpoint(str(tmp_path / "resumed" / "checkpoints" / "ckpt-12"))
  resumed = Trainer(c, str(tmp_path / "resumed"))
  resumed.train()
  out = capsys.readouterr().out
  assert "(step 12)" in out and "Steps 13–16: part 2 of 2 (sequential)." in out, out
  for (key, a), b in zip(full.model_entries.items(), resumed.model_entries.values()):
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
  moved = [np.abs(v.numpy() - at_kill.get_tensor(
      f"model/{k.replace('.', '..')}/.ATTRIBUTES/VARIABLE_VALUE")).max()
           for k, v in resumed.model_entries.items() if v.trainable]
  assert np.mean(np.array(moved) > 1e-3) > 0.5  # the resumed steps moved most weights
  for opt_a, opt_b in zip(full.groups, resumed.groups):
    for a, b in zip(opt_a[0].variables, opt_b[0].variables):
      np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["glow", pytest.param("denseflow", marks=pytest.mark.slow)])
def test_parts_on_two_logical_devices_compute_what_one_device_computes(tmp_path, model):
  """Part 2's variables (and its optimizer slots and EMA shadows) live on /CPU:1 and its
  computation runs there; the weights, slots and EMA after both parts' phases equal
  those of the same run on one device, after moving far from their initial values.
  DenseFlow's part 2 holds block 1's second unit, the augmentation before it and its
  BatchNorm statistics (with -m slow; Glow's case covers the trainer's placement)."""
  import json

  from tests.test_denseflow import TINY_DF
  from tests.test_distributed import ATOL, RTOL, _load, _train
  tiny = TINY if model == "glow" else [  # block 1: 2 units of 2 modules
      *[f for f in TINY_DF if not f.startswith("--config.model.modules=")],
      "--config.model.modules=(2, 1)", "--config.model.stack_modules=False"]
  args = [f"--config={os.path.join(REPO, 'configs', model + '.py')}:digits", *tiny,
          "--config.parts.split=across_blocks",
          f"--config.parts.boundaries={'1:1' if model == 'glow' else '1:2'}",
          "--config.parts.schedule=sequential", "--config.train.num_steps=6",
          "--config.train.warmup_steps=0", "--config.train.learning_rate=2e-3",
          "--config.train.grad_clip_norm=0", "--config.train.ema_decay=0.9",
          "--config.train.checkpoint_every=1000", "--config.train.eval_every=1000",
          "--config.train.sample_every=1000", "--config.train.jit_compile=False"]
  one, _ = _train(tmp_path, "one", args=args)
  two, _ = _train(tmp_path, "two", cpus=2,
                  args=args + ["--config.parts.devices=/CPU:0,/CPU:1"])
  devices = json.loads((tmp_path / "two.npz.devices.json").read_text())
  assert {d.rsplit(":", 1)[-1] for d in devices.values()} == {"0", "1"}, devices
  a, b = _load(one), _load(two)
  assert a.keys() == b.keys()
  assert any(k.startswith("optimizer_part_2/") for k in a) and any("ema/" in k for k in a)
  initial = {k[len("initial/"):]: v for k, v in a.items() if k.startswith("initial/")}
  moved = [np.max(np.abs(a[f"model/{k.replace('.', '..')}/.ATTRIBUTES/VARIABLE_VALUE"] - v))
           > 100 * ATOL for k, v in initial.items()]
  assert np.mean(moved) > 0.9, f"only {np.mean(moved):.0%} of the variables moved far"
  for k in a:
    np.testing.assert_allclose(b[k], a[k], rtol=RTOL, atol=ATOL, err_msg=k)


def test_alternating_turns_and_a_changed_schedule_is_refused_on_resume(tmp_path, tiny_config,
                                                                       capsys):
  c = _parts_config(tiny_config, "alternating")
  c.parts.update(turn_steps=2, end_to_end_steps=2, steps_per_part=0)
  c.train.num_steps = 10
  trainer = Trainer(c, str(tmp_path))
  before = {k: v.numpy().copy() for k, v in trainer.model_entries.items() if v.trainable}
  trainer.train()
  out = capsys.readouterr().out
  assert re.findall(r"^Steps (\d+)–(\d+): (.*) \(alternating\)\.$", out, re.M) == [
      ("1", "2", "part 1 of 3"), ("3", "4", "part 2 of 3"), ("5", "6", "part 3 of 3"),
      ("7", "8", "part 1 of 3"), ("9", "10", "end to end")]
  for k in range(3):  # every part trained
    assert any(np.abs(v.numpy() - before[key]).max() > 1e-4
               for key, v in trainer.model_entries.items()
               if any(v is w for w in trainer.parts.variables(k))), k
  c.train.num_steps = 12  # the end-to-end phase moves: step 10 would be part 2's turn
  with pytest.raises(ValueError, match="schedule"):
    Trainer(c, str(tmp_path)).train()


def test_denseflow_trains_in_parts_each_part_learns_while_the_other_stays(tmp_path, capsys):
  """By block: part 1 is block 1, its split and the dequantizer; part 2 block 2 and the
  top prior. On a fixed batch and noise, part 1's local objective falls during its
  phase; during part 2's, part 2's falls and part 1's does not move at all."""
  c = denseflow_tiny_config()
  c.parts.update(split="by_block", boundaries="1", schedule="sequential",
                 steps_per_part=15, learning_rates="3e-3,1e-2")
  c.train.update(num_steps=30, log_every=5, checkpoint_every=15, eval_every=1000,
                 sample_every=1000, warmup_steps=0, learning_rate=3e-3, keep_checkpoints=5)
  Trainer(c, str(tmp_path / "run")).train()
  out = capsys.readouterr().out
  assert re.findall(r"^Steps (\d+)–(\d+): (.*) \(sequential\)\.$", out, re.M) == [
      ("1", "15", "part 1 of 2"), ("16", "30", "part 2 of 2")]

  probe = Trainer(c, str(tmp_path / "probe"), verbose=False)
  probe.initialize()  # the run's initial state: same seed, same data
  batch = next(iter(probe.data.train_dataset(64, 7, 0)))
  def part_losses():
    losses = probe.model.part_losses(batch, _seed(), probe.parts, training=True)
    return [float(tf.reduce_mean(l)) for l in losses]
  initial = part_losses()
  probe.checkpoint.restore(str(tmp_path / "run" / "checkpoints" / "ckpt-15")).expect_partial()
  after_1 = part_losses()
  probe.checkpoint.restore(str(tmp_path / "run" / "checkpoints" / "ckpt-30")).expect_partial()
  after_2 = part_losses()
  assert after_1[0] < initial[0] - 0.05, (initial, after_1)
  assert after_2[1] < after_1[1] - 0.05, (after_1, after_2)
  assert after_2[0] == after_1[0], (after_1, after_2)
