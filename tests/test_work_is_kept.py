"""Nothing a user trained is lost or stranded: damaged checkpoints, changed configs,
two runs in one workdir, stop signals, an unwritable workdir or a failed save."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import tensorflow as tf

from gflow.train import Trainer
from gflow.train.checkpoint_files import NoIntactCheckpoint, checkpoint_steps
from gflow.train.lock import WorkdirBusy, workdir_lock
from gflow.train.resume_config import ConfigChanged
from gflow.train.trainer import CheckpointWriteError, WorkdirNotWritable
from tests.conftest import CONFIG, REPO, TINY, glow_config, run_cli


def _train(config, workdir, steps, capsys=None, **train):
  config.train.num_steps = steps
  config.train.update(train)
  trainer = Trainer(config, str(workdir))
  trainer.train()
  return trainer


@pytest.fixture(scope="module")
def trained_ten(tmp_path_factory):
  """A tiny run trained once for 10 steps, checkpoints at 5 and 10."""
  c = glow_config("digits")
  c.model.levels, c.model.steps, c.model.width = 2, 2, 16
  c.train.update(dict(batch_size=16, init_batch_size=64, log_every=5, checkpoint_every=5,
                      eval_every=1000, sample_every=1000))
  c.eval.batch_size, c.eval.num_samples = 400, 4
  workdir = tmp_path_factory.mktemp("ten") / "run"
  _train(c, workdir, 10)
  return c, workdir


@pytest.fixture
def run_of_ten(tmp_path, trained_ten):
  """A copy of that run for one test to damage (the config, its workdir)."""
  config, workdir = trained_ten
  shutil.copytree(workdir, tmp_path / "run")
  return config.copy_and_resolve_references(), tmp_path / "run"


def _resumed_step(out):
  line = [l for l in out.splitlines() if l.startswith("Resumed from ")]
  return int(line[0].rsplit("step ", 1)[1].rstrip(").")) if line else 0


# -- 1. damaged checkpoints ---------------------------------------------------------------
@pytest.mark.parametrize("damage", ["garbage index", "missing index"])
def test_a_damaged_index_resumes_from_the_newest_checkpoint(run_of_ten, capsys, damage):
  config, workdir = run_of_ten
  index = workdir / "checkpoints" / "checkpoint"
  if damage == "missing index":
    index.unlink()
  else:
    index.write_bytes(b"\x00\x17 not a checkpoint state {{{")
  capsys.readouterr()
  _train(config, workdir, 12)
  out = capsys.readouterr().out
  assert _resumed_step(out) == 10, out
  assert "Rewrote the checkpoint index" in out
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-12")


def test_a_truncated_checkpoint_is_set_aside_and_the_previous_one_used(run_of_ten, capsys):
  config, workdir = run_of_ten
  ckpt = workdir / "checkpoints"
  data = ckpt / "ckpt-10.data-00000-of-00001"
  original = data.read_bytes()
  data.write_bytes(original[:len(original) // 2])
  capsys.readouterr()
  _train(config, workdir, 12)
  out = capsys.readouterr().out
  assert _resumed_step(out) == 5, out
  assert "ckpt-10 is damaged" in out
  # the damaged files are kept beside the new checkpoints, not overwritten
  assert (ckpt / "ckpt-10.corrupt.data-00000-of-00001").read_bytes() == original[:len(original) // 2]
  assert sorted(checkpoint_steps(str(ckpt))) == [5, 10, 12]  # step 10 written anew


def test_no_readable_checkpoint_is_an_error_that_overwrites_nothing(run_of_ten):
  config, workdir = run_of_ten
  ckpt = workdir / "checkpoints"
  for step in (5, 10):
    (ckpt / f"ckpt-{step}.data-00000-of-00001").write_bytes(b"garbage")
  files = lambda: {p.name: p.read_bytes() for p in ckpt.iterdir() if p.is_file()}  # noqa: E731
  before = files()
  with pytest.raises(NoIntactCheckpoint, match="No checkpoint in .* can be read"):
    _train(config, workdir, 12)
  assert files() == before
  # gflow.load refuses too, naming the problem
  import gflow
  with pytest.raises(NoIntactCheckpoint):
    gflow.load(str(workdir))


# -- 2. a resumed run keeps its model and data --------------------------------------------
def test_changing_the_model_or_data_on_resume_is_refused_before_writing(run_of_ten):
  config, workdir = run_of_ten
  saved = (workdir / "config.json").read_bytes()
  wider = config.copy_and_resolve_references()
  wider.model.width = 32
  wider.data.num_levels = 32
  with pytest.raises(ConfigChanged, match=r"data\.num_levels: 256 → 32; model\.width: 16 → 32"):
    _train(wider, workdir, 12)
  assert (workdir / "config.json").read_bytes() == saved  # eval and sampling still work
  assert "test bits/dim: " in run_cli("evaluate", f"--workdir={workdir}").stdout


def test_changing_steps_and_logging_on_resume_is_allowed_and_reported(run_of_ten, capsys):
  config, workdir = run_of_ten
  capsys.readouterr()
  _train(config, workdir, 12, log_every=3)
  out = capsys.readouterr().out
  assert "Resuming with config changes: train.log_every: 5 → 3; train.num_steps: 10 → 12" in out
  assert json.loads((workdir / "config.json").read_text())["train"]["num_steps"] == 12


def test_other_data_of_the_same_shape_is_refused(run_of_ten):
  config, workdir = run_of_ten
  run = json.loads((workdir / "run.json").read_text())
  run["num_train"] += 1  # as if the folder had gained an image
  (workdir / "run.json").write_text(json.dumps(run))
  with pytest.raises(ConfigChanged, match="trained on other data .*num_train"):
    _train(config, workdir, 12)


def test_finetuning_into_its_own_workdir_is_refused_however_it_is_spelt(run_of_ten):
  _, workdir = run_of_ten
  proc = run_cli("train", f"--finetune_from={workdir}", f"--workdir={workdir}/", check=False)
  assert proc.returncode == 2 and "must differ" in proc.stderr, proc.stderr


# -- 3. one training per workdir ----------------------------------------------------------
def test_a_second_training_in_a_busy_workdir_is_refused(tmp_path, tiny_config):
  os.makedirs(tmp_path / "run")
  with workdir_lock(str(tmp_path / "run")):
    with pytest.raises(WorkdirBusy, match=f"pid {os.getpid()} .* is training in it"):
      _train(tiny_config, tmp_path / "run", 2)
  assert not (tmp_path / "run" / "config.json").exists()


def test_a_killed_holder_leaves_no_stuck_lock(tmp_path):
  code = ("import sys, time; from gflow.train.lock import workdir_lock\n"
          "with workdir_lock(sys.argv[1]):\n  print('held', flush=True); time.sleep(60)")
  proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO,
                          stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == "held"
  with pytest.raises(WorkdirBusy):
    with workdir_lock(str(tmp_path)):
      pass
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  with workdir_lock(str(tmp_path)):  # free again
    pass


# -- 4. stop signals save and exit cleanly ------------------------------------------------
@pytest.mark.parametrize("sig,code", [
    (signal.SIGTERM, 143),
    pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow),  # the same path; suite time
])
def test_a_stop_signal_saves_a_checkpoint_and_the_same_command_resumes(tmp_path, sig, code):
  workdir = tmp_path / "run"
  cmd = [sys.executable, "-m", "gflow.cli.train", f"--config={CONFIG}:digits",
         f"--workdir={workdir}", *TINY, "--config.train.jit_compile=False",
         "--config.train.num_steps=100000", "--config.train.checkpoint_every=100000",
         "--config.train.log_every=7"]
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  for line in proc.stdout:  # the first progress line: the step loop is running
    if line.startswith("step "):
      break
  proc.send_signal(sig)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == code, err
  assert "Traceback" not in err, err
  stopped = int(err.split("Stopped at step ")[1].split()[0])
  assert stopped >= 7
  assert sorted(checkpoint_steps(str(workdir / "checkpoints"))) == [stopped]
  if sig == signal.SIGINT:
    return  # resuming is the same for both signals
  resumed = subprocess.run([*cmd[:-3], f"--config.train.num_steps={stopped + 3}",
                            "--config.train.checkpoint_every=100000",
                            "--config.train.log_every=7"], cwd=REPO, capture_output=True,
                           text=True, timeout=300)
  assert resumed.returncode == 0, resumed.stderr
  assert _resumed_step(resumed.stdout) == stopped


# -- 5. an unwritable workdir or a failed save --------------------------------------------
def test_a_workdir_that_cannot_be_written_is_one_clear_error_before_training(tmp_path,
                                                                             tiny_config):
  (tmp_path / "a_file").write_text("")
  with pytest.raises(WorkdirNotWritable, match="Cannot write to --workdir=.*a_file/run"):
    Trainer(tiny_config, str(tmp_path / "a_file" / "run"))
  proc = run_cli("train", f"--config={CONFIG}:digits", f"--workdir={tmp_path}/a_file/run",
                 check=False)
  assert proc.returncode == 2 and proc.stderr.startswith("error: Cannot write to --workdir")


def test_a_failed_save_leaves_no_half_written_checkpoint(run_of_ten, monkeypatch):
  config, workdir = run_of_ten
  config.train.num_steps = 12
  trainer = Trainer(config, str(workdir))
  ckpt = workdir / "checkpoints"

  def disk_full(checkpoint_number):
    os.makedirs(ckpt / f"ckpt-{checkpoint_number}_temp")
    (ckpt / f"ckpt-{checkpoint_number}_temp" / "part-00000").write_bytes(b"half")
    raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")
  monkeypatch.setattr(trainer.manager, "save", disk_full)
  with pytest.raises(CheckpointWriteError, match="step 12 .*No space left on device.*"
                                                 "disk full or read-only.*ckpt-10, is intact"):
    trainer.train()
  assert sorted(os.listdir(ckpt)) == sorted(
      ["best", "checkpoint"] + [f"ckpt-{s}.{e}" for s in (5, 10)
                        for e in ("index", "data-00000-of-00001")])


# -- 6. the best checkpoint ----------------------------------------------------------------
def test_the_best_checkpoint_follows_the_figure_and_survives_a_resume(tmp_path):
  from gflow.train.best import BestCheckpoint
  v = tf.Variable(0.0)
  ckpt = tf.train.Checkpoint(v=v)
  best = BestCheckpoint(ckpt, str(tmp_path / "best"))
  for step, value, saved in [(10, 5.0, True), (20, 4.5, True), (30, 4.7, False)]:
    v.assign(float(step))
    assert best.offer(step, "bits/dim", value) is saved
  again = BestCheckpoint(ckpt, str(tmp_path / "best"))  # a resumed run
  assert again.record["step"] == 20 and not again.offer(40, "bits/dim", 4.6)
  assert again.offer(50, "bits/dim", 4.4)
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "best")))
  assert reader.get_tensor("v/.ATTRIBUTES/VARIABLE_VALUE") == 30.0  # v at the save of step 50
  likelihood = BestCheckpoint(ckpt, str(tmp_path / "ll"))
  assert likelihood.offer(1, "log-likelihood", 2.0, higher_is_better=True)
  assert not likelihood.offer(2, "log-likelihood", 1.0, higher_is_better=True)
  assert likelihood.offer(3, "log-likelihood", 3.0, higher_is_better=True)
