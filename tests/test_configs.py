"""Configs: derived values follow command-line overrides (ml_collections references)."""

import os
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from tests.conftest import REPO

CONFIGS = os.path.join(REPO, "configs")


def _parse(config, *overrides):
  """The config as `gflow-train --config=<config> <overrides>` would see it (the config
  flag reads its overrides from sys.argv, as on the command line)."""
  argv = ["gflow-train", f"--config={os.path.join(CONFIGS, config)}", *overrides]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True)
  saved, sys.argv = sys.argv, argv
  try:
    values(argv)
  finally:
    sys.argv = saved
  return values.config


@pytest.mark.parametrize("arg,images", [("cifar10", 50_000), ("imagenet64", 1_281_149)])
def test_denseflow_schedule_follows_the_batch_size_and_epochs(arg, images):
  default = _parse(f"denseflow.py:{arg}")
  c = _parse(f"denseflow.py:{arg}", "--config.train.batch_size=16",
             "--config.train.num_epochs=3", "--config.train.finetune_epochs=2")
  assert default.train.decay_steps == images // default.train.batch_size
  assert c.train.decay_steps == images // 16 != default.train.decay_steps
  assert c.train.num_steps == 3 * (images // 16)
  assert c.train.finetune_steps == 2 * (images // 16)
  # An explicit override of a derived value wins (and leaves the others derived).
  c = _parse(f"denseflow.py:{arg}", "--config.train.num_steps=10",
             "--config.train.batch_size=16")
  assert c.train.num_steps == 10 and c.train.decay_steps == images // 16


def test_denseflow_schedule_follows_the_dataset_size():
  c = _parse("denseflow.py:digits", "--config.data.num_train=640", "--config.train.batch_size=32")
  assert c.train.decay_steps == 20 and c.train.num_steps == 100 * 20


def test_glow_cifar10_warmup_is_ten_epochs_at_any_batch_size():
  assert _parse("glow.py:cifar10").train.warmup_steps == 10 * 50_000 // 64
  assert _parse("glow.py:cifar10", "--config.train.batch_size=128").train.warmup_steps == 3906


def test_the_saved_config_holds_the_resolved_values(tmp_path):
  import json
  c = _parse("denseflow.py:cifar10", "--config.train.batch_size=16")
  saved = json.loads(c.to_json_best_effort())
  assert saved["train"]["decay_steps"] == 50_000 // 16


def test_the_whole_training_config_is_validated_before_anything_is_built(tmp_path):
  """Every bad field reported at once, each with its value (in-process: Trainer)."""
  import ml_collections

  from gflow.train import Trainer
  from gflow.train.validate import ConfigError
  c = ml_collections.ConfigDict(dict(
      seed=0, model=dict(name="glow", network_dtype="mixed_bfloat"),
      data=dict(name="digits"),
      train=dict(batch_size=-2, num_steps=0, log_every=1, checkpoint_every=2.5,
                 eval_every=True, sample_every=1, keep_checkpoints=1, init_batch_size=1,
                 learning_rate=float("nan"), optimizer="adam", warmup_steps=-1,
                 grad_clip_norm=0.0, ema_decay=1.0),
      eval=dict(batch_size=1)))
  with pytest.raises(ConfigError) as e:
    Trainer(c, str(tmp_path / "run"))
  message = str(e.value)
  for part in ("config.train.batch_size must be a whole number >= 1; got -2",
               "config.train.num_steps must be a whole number >= 1; got 0",
               "config.train.checkpoint_every must be a whole number >= 1; got 2.5",
               "config.train.eval_every must be a whole number >= 1; got True",
               "config.train.warmup_steps must be a finite number >= 0; got -1",
               "config.train.learning_rate must be a finite number > 0; got nan",
               "config.train.ema_decay must be < 1",
               "Unknown network dtype (config.model.network_dtype) 'mixed_bfloat'; did you mean "
               "'mixed_bfloat16'?"):
    assert part in message, message
  assert "\n" not in message and not (tmp_path / "run").exists()
