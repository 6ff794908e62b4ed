"""Shared test set-up: quiet TensorFlow, helpers to run the console scripts."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from gflow.xla_cpu_flags import set_xla_cpu_defaults  # noqa: E402

# XLA:CPU's flags as gflow's binaries set them: code compiled in the tests is theirs
# (XLA reads XLA_FLAGS at its first compilation).
set_xla_cpu_defaults()

CONFIG = os.path.join(REPO, "configs", "glow.py")

# A tiny Glow on the digits that trains a step in well under a second.
TINY = [
    "--config.model.levels=2", "--config.model.steps=2", "--config.model.width=16",
    "--config.train.batch_size=16", "--config.train.init_batch_size=64",
    "--config.train.log_every=5", "--config.eval.batch_size=400",
    "--config.eval.num_samples=4",
]


def run_cli(module, *args, env=None, timeout=600, check=True):
  """Runs `python -m gflow.cli.<module> args` (the console script's code) and
  returns the CompletedProcess with text stdout/stderr."""
  full_env = dict(os.environ, **(env or {}))
  proc = subprocess.run([sys.executable, "-m", f"gflow.cli.{module}", *args],
                        capture_output=True, text=True, env=full_env, timeout=timeout,
                        cwd=REPO)
  if check and proc.returncode != 0:
    raise AssertionError(f"gflow.cli.{module} exited {proc.returncode}\n"
                         f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}")
  return proc


def model_config(model, arg="digits"):
  """configs/<model>.py:<arg>, a fresh ConfigDict."""
  import importlib
  sys.path.insert(0, os.path.join(REPO, "configs"))
  try:
    module = importlib.import_module(model)
  finally:
    sys.path.pop(0)
  return module.get_config(arg)


def glow_config(arg="digits"):
  """configs/glow.py:<arg>, a fresh ConfigDict."""
  return model_config("glow", arg)


@pytest.fixture
def tiny_config():
  """configs/glow.py:digits shrunk for tests (a ConfigDict you may edit)."""
  c = glow_config("digits")
  c.model.levels, c.model.steps, c.model.width = 2, 2, 16
  c.train.batch_size, c.train.init_batch_size = 16, 64
  c.train.log_every, c.eval.batch_size, c.eval.num_samples = 5, 400, 4
  return c


# Tests and cases that run only with `-m slow`, for the default suite's time budget; what
# each covers is also covered by a cheaper default test named here:
SLOW_CASES = {
    # DenseFlow's 2 logical replicas (Glow's runs by default through the same trainer
    # step; DenseFlow's BatchNorm under 2 replicas runs by default in test_denseflow_nets)
    "test_distributed.py::test_two_logical_cpu_replicas_equal_one[denseflow]",
    # NCSNv2's 2 logical replicas (66 s: Glow's run by default through the same trainer
    # step; the score model's noise comes from the same gflow.Noise slicing)
    "test_distributed.py::test_two_logical_cpu_replicas_equal_one[ncsnv2]",
    # the XLA step against the graph step (an XLA step with bfloat16 networks runs by
    # default in test_waveflow.py)
    "test_train.py::test_xla_step_on_cpu_matches_the_graph_step",
    # DenseFlow under MultiWorkerMirroredStrategy (its 2 logical replicas run by default,
    # and Glow runs under both strategies)
    "test_distributed.py::test_two_worker_processes_equal_one[denseflow]",
    # NCSNv2 under MultiWorkerMirroredStrategy (its 2 logical replicas run by default)
    "test_distributed.py::test_two_worker_processes_equal_one[ncsnv2]",
    # a SIGKILLed MWMS worker (the single-process kill test and Glow's MWMS run by default)
    "test_distributed.py::test_a_killed_worker_ends_the_run_and_both_resume_to_the_"
    "uninterrupted_weights",
    # WaveFlow killed and resumed (Glow's kill test and WaveFlow's tiny run by default)
    "test_waveflow.py::test_resume_after_a_kill_ends_with_the_uninterrupted_weights",
    # remat under XLA (30 s: the graph case runs by default; XLA adds an optimisation
    # barrier before the recomputation)
    "test_remat.py::test_remat_gives_the_plain_loss_gradients_and_batchnorm_statistics[xla]",
    # Glow's parts on 2 logical devices (parts on one device run by default; with
    # -m slow the trainer's per-part device placement, for Glow and DenseFlow)
    "test_parts.py::test_parts_on_two_logical_devices_compute_what_one_device_computes"
    "[glow]",
    # resume inside part 2's phase (the plain trainer's kill-and-resume and the refused
    # changed schedule, which reads the checkpointed phase, run by default)
    "test_parts.py::test_sequential_parts_resume_inside_a_phase_to_the_uninterrupted_"
    "weights",
    # DenseFlow trained in parts through the trainer (its parts' bounds, sums, gradient
    # isolation, and Glow's parts in the trainer run by default)
    "test_parts.py::test_denseflow_trains_in_parts_each_part_learns_while_the_other_stays",
    # fine-tuning a trained DenseFlow (the fine-tune refusals run by default)
    "test_denseflow.py::test_finetune_starts_from_the_trained_weights_at_the_finetune_rate",
    # a thousand samples in chunks at batch one (the sample round trip runs by default)
    "test_denseflow.py::test_a_thousand_samples_in_chunks_at_batch_one",
    # Glow under MultiWorkerMirroredStrategy (Glow's 2 logical replicas run by default
    # through the same trainer step; the strategy itself only with -m slow)
    "test_distributed.py::test_two_worker_processes_equal_one[glow]",
    # DenseFlow with virtual-batch BatchNorm, XLA on, under 2 workers (its 2 logical
    # replicas run by default: the same trainer step; the workers add the collective)
    "test_distributed.py::test_two_worker_processes_equal_one[denseflow_virtual_bn]",
    # ... and under 2 logical replicas with the whole step compiled (122 s; by default:
    # the same virtual BatchNorm with XLA per module, and Glow's whole compiled step,
    # both under 2 logical replicas)
    "test_distributed.py::test_two_logical_cpu_replicas_equal_one[denseflow_virtual_bn]",
    # the same without XLA, where the replicas share their modules' traces (XLA on
    # runs by default)
    "test_distributed.py::test_two_logical_cpu_replicas_equal_one[denseflow_virtual_bn_graph]",
    "test_distributed.py::test_two_worker_processes_equal_one[denseflow_virtual_bn_graph]",
    # XLA per module under MultiWorkerMirroredStrategy (its 2 logical replicas run by default)
    "test_distributed.py::test_two_worker_processes_equal_one[denseflow_virtual_bn_modules]",
    # the trainer with XLA per module against the graph trainer, 3 steps (55 s; by default:
    # per module XLA gives the plain loss, gradients and statistics in test_remat.py, and
    # the trainer's per-module step trains alike on 1 and 2 replicas in test_distributed.py)
    "test_shared_trace.py::test_xla_per_module_trains_what_the_graph_step_trains",
    # a missing checkpoint index (a garbage index runs by default)
    "test_work_is_kept.py::test_a_damaged_index_resumes_from_the_newest_checkpoint"
    "[missing index]",
}


def pytest_collection_modifyitems(config, items):
  for item in items:
    if item.nodeid.split("/")[-1] in SLOW_CASES:
      item.add_marker(pytest.mark.slow)
